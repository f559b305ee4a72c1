#include "bptt/rnn_loss.hpp"

#include "bptt/recurrent_layer.hpp"
#include "bptt/softmax_head.hpp"
#include "bptt/workspace.hpp"
#include "rnn_loss_pipeline.hpp"

#include <algorithm>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {
namespace {

// Vᵀ dO is computed for about this many rows at a time: enough for an efficient product, small
// enough that the chunk buffer stays a few per-step vectors rather than a second sequence.
constexpr Index kUpstreamChunkRows = 128;

Index upstream_chunk_steps(const ProblemSize& size) {
  // A short sequence (up to twice that) is one chunk: the two-thread split, which short
  // sequences take, needs room for all of its rows (rnn_loss_pipeline.cpp).
  if (size.steps * size.batch <= 2 * kUpstreamChunkRows) return std::max<Index>(1, size.steps);
  const Index steps = (kUpstreamChunkRows + size.batch - 1) / std::max<Index>(1, size.batch);
  return std::clamp<Index>(steps, 1, std::max<Index>(1, size.steps));
}

struct ScratchCounts {
  std::size_t hidden_states, work, chunk;  // scalars of each buffer
};

ScratchCounts scratch_counts(const ProblemSize& size) {
  const Index rows = size.steps * size.batch;
  return {std::size_t((size.steps + 1) * size.batch * size.hidden_size),
          std::size_t(rows * std::max(size.hidden_size, size.output_size)),
          std::size_t(upstream_chunk_steps(size) * size.batch * size.hidden_size)};
}

}  // namespace

std::size_t rnn_loss_and_grad_scratch_bytes(const ProblemSize& size, std::size_t scalar_bytes) {
  const ScratchCounts counts = scratch_counts(size);
  return Workspace::bytes_for({counts.hidden_states * scalar_bytes, counts.work * scalar_bytes,
                               counts.chunk * scalar_bytes});
}

template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last) {
  const ProblemSize size{inputs.steps, inputs.batch, layer.input_size, layer.hidden_size,
                         head.output_size};
  const Index B = size.batch, H = size.hidden_size, O = size.output_size;
  const Index N = size.steps * B, width = std::max(H, O);

  const ScratchCounts counts = scratch_counts(size);
  Workspace workspace(rnn_loss_and_grad_scratch_bytes(size, sizeof(S)));
  S* const states = workspace.take<S>(counts.hidden_states);
  S* const work = workspace.take<S>(counts.work);
  S* const chunk = workspace.take<S>(counts.chunk);
  const auto schedule = detail::two_thread_schedule(size, inputs.lengths != nullptr,
                                                    inputs.reverse, upstream_chunk_steps(size) * B);
  if (schedule != detail::TwoThreadSchedule::none) {
    const auto run = schedule == detail::TwoThreadSchedule::pipeline
                         ? detail::pipelined_loss_and_grad<S>
                         : detail::split_loss_and_grad<S>;
    const double loss = run(layer, head, inputs, targets, h0, activation, reduction, layer_grads,
                            head_grads, states, work, chunk);
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

  // work holds the logits, then dL/do in place, then dL/da in place, one row per (t, b).
  MatrixView<S> logits = matrix_view(work, N, O, width);
  head_logits(head, hidden_states, logits);
  const double loss = softmax_cross_entropy(logits, targets, reduction);
  const ConstMatrixView<S> d_logits = matrix_view(static_cast<const S*>(work), N, O, width);
  head_parameter_gradients(hidden_states, d_logits, head_grads);

  // dL/dh_t = Vᵀ dO_t, chunk by chunk, each chunk just before the reverse loop reaches it: the
  // rows of dO it reads are the rows of dL/da the loop is about to write.
  const Index chunk_steps = upstream_chunk_steps(size);
  MatrixView<S> d_pre = matrix_view(work, N, H, width);
  auto fill_upstream = [&](Index t0, Index t1) {
    const Index rows = (t1 - t0) * B;
    MatrixView<S> upstream = matrix_view(chunk, rows, H, H);
    head_hidden_gradient(head, matrix_view(d_logits.data() + t0 * B * width, rows, O, width), upstream);
    d_pre.middleRows(t0 * B, rows) = upstream;
  };
  detail::recurrent_backward_into(layer, inputs, activation, initial, hidden,
                                  static_cast<const S*>(nullptr), chunk_steps, fill_upstream,
                                  detail::GradientRows<S>{work, width, B, order}, layer_grads);
  return loss;
}

BPTT_DECLARE_RNN_LOSS(float, )
BPTT_DECLARE_RNN_LOSS(double, )

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
