// The whole model (bptt/rnn_loss.hpp): one schedule on one thread, below, or one of the
// two-thread schedules of rnn_loss_pipeline.cpp.
#include "entry_points.hpp"
#include "recurrence.hpp"
#include "rnn_loss_pipeline.hpp"
#include "softmax_head.hpp"

#include "../workspace.hpp"

#include <algorithm>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

// The one-thread schedule runs the backward pass in chunks: Vᵀ dO of a chunk is computed into a
// ring of two chunks just before the loop needs it, and the layer's gradients are taken from it
// once the loop is through (recurrence.hpp).
Index upstream_chunk_steps(const ProblemSize& size) {
  return steps_per_chunk(kBackwardChunkRows, size.batch, size.steps);
}

// Scalars of each buffer of LossScratch. One thread: the logits, then dO in place, in rows of
// output_size, and dL/da in the ring. The two-thread schedules keep rows of
// max(hidden_size, output_size) (the pipeline turns dO into dL/da in place there) and the rows
// of dL/dh their schedule takes besides.
struct ScratchCounts {
  std::size_t states, logit_rows, hidden_rows;
};

ScratchCounts scratch_counts(const ProblemSize& size, detail::TwoThreadSchedule schedule) {
  const Index rows = size.steps * size.batch, H = size.hidden_size, O = size.output_size;
  const auto states = std::size_t((size.steps + 1) * size.batch * H);
  if (schedule == detail::TwoThreadSchedule::none) {
    const Index ring_steps = std::min(size.steps, 2 * upstream_chunk_steps(size));
    return {states, std::size_t(rows * O), std::size_t(ring_steps * size.batch * H)};
  }
  return {states, std::size_t(rows * std::max(H, O)),
          std::size_t(detail::schedule_hidden_rows(schedule, size) * H)};
}

std::size_t scratch_bytes(const ScratchCounts& counts, std::size_t scalar_bytes) {
  return Workspace::bytes_for({counts.states * scalar_bytes, counts.logit_rows * scalar_bytes,
                               counts.hidden_rows * scalar_bytes});
}

// The schedule on one thread: the forward pass, the head on all rows at once, then the backward
// loop with dL/dh computed a chunk at a time just before the loop runs it.
template <class S>
double one_thread_loss_and_grad(const detail::LossCall<S>& call,
                                const detail::LossScratch<S>& scratch, S* h_last) {
  const LayerWeights<S>& layer = call.layer;
  const HeadWeights<S>& head = call.head;
  const SequenceInput<S>& inputs = call.inputs;
  const Index B = inputs.batch, H = layer.hidden_size, O = head.output_size;
  const Index N = inputs.steps * B;

  // states: h0 and the hidden states, one slot each (see bptt/recurrent_layer.hpp).
  const TimeOrder order{inputs.steps, inputs.reverse};
  S* const states = scratch.states;
  recurrent_forward(layer, inputs, call.h0, call.activation, states);
  const S* initial = states + order.initial_slot() * B * H;
  const S* hidden = states + order.first_state_slot() * B * H;
  matrix_view(h_last, B, H, H) =
      matrix_view(static_cast<const S*>(states) + order.final_slot() * B * H, B, H, H);
  const ConstMatrixView<S> hidden_states = matrix_view(hidden, N, H, H);

  // The logits, then dL/do in place, one row per (t, b).
  MatrixView<S> logits = matrix_view(scratch.logit_rows, N, O, O);
  head_logits(head, hidden_states, logits);
  const double loss = softmax_cross_entropy(logits, call.targets, call.reduction);
  const ConstMatrixView<S> d_logits =
      matrix_view(static_cast<const S*>(scratch.logit_rows), N, O, O);
  head_parameter_gradients(hidden_states, d_logits, call.head_grads);

  // dL/dh_t = Vᵀ dO_t, a chunk at a time, into the ring just before the backward loop runs it.
  const Index chunk_steps = steps_per_chunk(kBackwardChunkRows, B, inputs.steps);
  const detail::GradientRows<S> d_pre{scratch.hidden_rows, H, B, order, chunk_steps};
  auto fill_upstream = [&](Index t0, Index t1) {
    const Index rows = (t1 - t0) * B;
    head_hidden_gradient(head, matrix_view(d_logits.data() + t0 * B * O, rows, O, O),
                         matrix_view(d_pre.at(t0), rows, H, H));
  };
  detail::recurrent_backward_into(layer, inputs, call.activation, initial, hidden,
                                  static_cast<const S*>(nullptr), chunk_steps, fill_upstream,
                                  d_pre, call.layer_grads);
  if (const GradientsDone* done = call.done) {
    on_threads(std::min(done->max_threads, free_threads()),
               [&](int thread, int threads) { done->run(thread, threads, loss); });
  }
  return loss;
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
  const detail::LossCall<S> call{layer,    head,      inputs,      targets,    h0,
                                 activation, reduction, layer_grads, head_grads, done};
  const auto schedule =
      detail::two_thread_schedule(size, inputs.lengths != nullptr, inputs.reverse);
  const ScratchCounts counts = scratch_counts(size, schedule);
  Workspace workspace(scratch_bytes(counts, sizeof(S)));
  const detail::LossScratch<S> scratch{workspace.take<S>(counts.states),
                                       workspace.take<S>(counts.logit_rows),
                                       workspace.take<S>(counts.hidden_rows)};
  if (schedule == detail::TwoThreadSchedule::none)
    return one_thread_loss_and_grad(call, scratch, h_last);

  const auto run = schedule == detail::TwoThreadSchedule::pipeline
                       ? detail::pipelined_loss_and_grad<S>
                       : detail::stepwise_loss_and_grad<S>;
  const double loss = run(call, scratch);
  const Index B = size.batch, H = size.hidden_size, N = size.steps * B;
  matrix_view(h_last, B, H, H) = matrix_view(static_cast<const S*>(scratch.states) + N * H, B, H, H);
  return loss;
}

#define BPTT_INSTANTIATE(S)                                                                    \
  template double rnn_loss_and_grad<S>(                                                        \
      const LayerWeights<S>&, const HeadWeights<S>&, const SequenceInput<S>&, const Targets<S>&, \
      const S*, Activation, Reduction, const LayerGradients<S>&, const HeadGradients<S>&, S*,   \
      const GradientsDone*);
BPTT_INSTANTIATE(float)
BPTT_INSTANTIATE(double)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
