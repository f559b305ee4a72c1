#include "bptt/rnn_loss.hpp"

#include "bptt/recurrent_layer.hpp"
#include "bptt/softmax_head.hpp"
#include "bptt/threads.hpp"
#include "bptt/workspace.hpp"
#include "rnn_loss_pipeline.hpp"

#include <algorithm>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {
namespace {

// The one-thread schedule runs the backward pass in chunks of about this many rows: Vᵀ dO of a
// chunk is computed into a ring of two chunks just before the loop needs it, and the layer's
// gradients are taken from it once the loop is through (recurrent_layer.hpp).
constexpr Index kUpstreamChunkRows = 128;

Index upstream_chunk_steps(const ProblemSize& size) {
  const Index steps = (kUpstreamChunkRows + size.batch - 1) / std::max<Index>(1, size.batch);
  return std::clamp<Index>(steps, 1, std::max<Index>(1, size.steps));
}

// Scalars of each buffer. One thread: the logits, then dO in place, in work (rows of output_size)
// and dL/da in the ring. The two-thread schedules keep rows of max(hidden_size, output_size) in
// work (the pipeline turns dO into dL/da in place there) and a chunk buffer besides.
struct ScratchCounts {
  std::size_t hidden_states, work, chunk;
};

ScratchCounts scratch_counts(const ProblemSize& size, detail::TwoThreadSchedule schedule) {
  const Index rows = size.steps * size.batch, H = size.hidden_size, O = size.output_size;
  const auto hidden_states = std::size_t((size.steps + 1) * size.batch * H);
  if (schedule == detail::TwoThreadSchedule::none) {
    const Index ring_steps = std::min(size.steps, 2 * upstream_chunk_steps(size));
    return {hidden_states, std::size_t(rows * O), std::size_t(ring_steps * size.batch * H)};
  }
  return {hidden_states, std::size_t(rows * std::max(H, O)),
          std::size_t(detail::schedule_chunk_rows(schedule, size) * H)};
}

std::size_t scratch_bytes(const ScratchCounts& counts, std::size_t scalar_bytes) {
  return Workspace::bytes_for({counts.hidden_states * scalar_bytes, counts.work * scalar_bytes,
                               counts.chunk * scalar_bytes});
}

}  // namespace

std::size_t rnn_loss_and_grad_scratch_bytes(const ProblemSize& size, std::size_t scalar_bytes) {
  // The most any schedule takes: the schedule depends on the threads free at the call.
  std::size_t most = 0;
  for (const auto schedule : {detail::TwoThreadSchedule::none, detail::TwoThreadSchedule::pipeline,
                              detail::TwoThreadSchedule::stepwise})
    most = std::max(most, scratch_bytes(scratch_counts(size, schedule), scalar_bytes));
  return most;
}

template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done) {
  const ProblemSize size{inputs.steps, inputs.batch, layer.input_size, layer.hidden_size,
                         head.output_size};
  const Index B = size.batch, H = size.hidden_size, O = size.output_size;
  const Index N = size.steps * B;

  const auto schedule =
      detail::two_thread_schedule(size, inputs.lengths != nullptr, inputs.reverse);
  const ScratchCounts counts = scratch_counts(size, schedule);
  Workspace workspace(scratch_bytes(counts, sizeof(S)));
  S* const states = workspace.take<S>(counts.hidden_states);
  S* const work = workspace.take<S>(counts.work);
  S* const chunk = workspace.take<S>(counts.chunk);
  if (schedule != detail::TwoThreadSchedule::none) {
    const auto run = schedule == detail::TwoThreadSchedule::pipeline
                         ? detail::pipelined_loss_and_grad<S>
                         : detail::stepwise_loss_and_grad<S>;
    const double loss = run(layer, head, inputs, targets, h0, activation, reduction, layer_grads,
                            head_grads, states, work, chunk, done);
    matrix_view(h_last, B, H, H) = matrix_view(static_cast<const S*>(states) + N * H, B, H, H);
    return loss;
  }

  // states: h0 and the hidden states, one slot each (see recurrent_layer.hpp).
  const TimeOrder order{size.steps, inputs.reverse};
  recurrent_forward(layer, inputs, h0, activation, states);
  const S* initial = states + order.initial_slot() * B * H;
  const S* hidden = states + order.first_state_slot() * B * H;
  matrix_view(h_last, B, H, H) =
      matrix_view(static_cast<const S*>(states) + order.final_slot() * B * H, B, H, H);
  const ConstMatrixView<S> hidden_states = matrix_view(hidden, N, H, H);

  // work holds the logits, then dL/do in place, one row per (t, b).
  MatrixView<S> logits = matrix_view(work, N, O, O);
  head_logits(head, hidden_states, logits);
  const double loss = softmax_cross_entropy(logits, targets, reduction);
  const ConstMatrixView<S> d_logits = matrix_view(static_cast<const S*>(work), N, O, O);
  head_parameter_gradients(hidden_states, d_logits, head_grads);

  // dL/dh_t = Vᵀ dO_t, a chunk at a time, into the ring just before the backward loop runs it.
  const Index chunk_steps = upstream_chunk_steps(size);
  const detail::GradientRows<S> d_pre{chunk, H, B, order, chunk_steps};
  auto fill_upstream = [&](Index t0, Index t1) {
    const Index rows = (t1 - t0) * B;
    head_hidden_gradient(head, matrix_view(d_logits.data() + t0 * B * O, rows, O, O),
                         matrix_view(d_pre.at(t0), rows, H, H));
  };
  detail::recurrent_backward_into(layer, inputs, activation, initial, hidden,
                                  static_cast<const S*>(nullptr), chunk_steps, fill_upstream,
                                  d_pre, layer_grads);
  if (done) {
    on_threads(std::min(done->max_threads, free_threads()),
               [&](int thread, int threads) { done->run(thread, threads, loss); });
  }
  return loss;
}

BPTT_DECLARE_RNN_LOSS(float, )
BPTT_DECLARE_RNN_LOSS(double, )

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
