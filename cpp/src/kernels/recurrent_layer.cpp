// The recurrent layer on its own (bptt/recurrent_layer.hpp): the forward pass, and the backward
// pass from the caller's dL/dh_t, copied chunk by chunk into a ring of two chunks of da.
#include "bfloat16.hpp"
#include "entry_points.hpp"
#include "recurrence.hpp"

#include "../workspace.hpp"

#include <optional>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

// With bfloat16 operands (bfloat16.hpp), U, W and dense inputs rounded into copies, and `states`
// more buffers of the given sizes (the hidden states and h0 that backward reads) likewise.
template <class S>
struct LayerOperands {
  LayerWeights<S> weights;
  SequenceInput<S> inputs;
  std::optional<Workspace> workspace;

  LayerOperands(const LayerWeights<S>& given, const SequenceInput<S>& given_inputs,
                std::initializer_list<std::pair<const S**, Index>> states = {})
      : weights(given), inputs(given_inputs) {
    if (given.operands != ProductOperands::bfloat16) return;
    const Index D = given.input_size, H = given.hidden_size;
    const Index dense = given_inputs.dense ? given_inputs.steps * given_inputs.batch * D : 0;
    std::size_t bytes = Workspace::bytes_for({std::size_t(H * D) * sizeof(S),
                                              std::size_t(H * H) * sizeof(S),
                                              std::size_t(dense) * sizeof(S)});
    for (const auto& [values, count] : states)
      bytes += Workspace::bytes_for({std::size_t(count) * sizeof(S)});
    workspace.emplace(bytes);
    weights = rounded_layer(given, *workspace);
    inputs = rounded_inputs(given_inputs, D, *workspace);
    for (const auto& [values, count] : states) {
      if (!*values) continue;
      S* const rounded = workspace->take<S>(std::size_t(count));
      rounded_copy(*values, count, rounded);
      *values = rounded;
    }
  }
};

}  // namespace

template <class S>
void recurrent_forward(const LayerWeights<S>& given_weights, const SequenceInput<S>& given_inputs,
                       const S* h0, Activation activation, S* states) {
  const LayerOperands<S> operands(given_weights, given_inputs);
  const LayerWeights<S>& weights = operands.weights;
  const SequenceInput<S>& inputs = operands.inputs;
  detail::prepare_states(weights, inputs, h0, states, inputs.steps);
  if (inputs.steps * inputs.batch > 0)
    detail::forward_recurrence(weights, inputs, activation, states);
}

template <class S>
void recurrent_backward(const LayerWeights<S>& given_weights, const SequenceInput<S>& given_inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads) {
  const Index H = given_weights.hidden_size, B = given_inputs.batch, T = given_inputs.steps;
  const LayerOperands<S> operands(given_weights, given_inputs,
                                  {{&h0, B * H}, {&hidden, T * B * H}});
  const LayerWeights<S>& weights = operands.weights;
  const SequenceInput<S>& inputs = operands.inputs;
  const Index chunk_steps = steps_per_chunk(kChunkRows, B, T);
  // da lives in a ring of two chunks: dL/dh of a chunk is copied in just before the loop runs it.
  const Index ring_rows = std::min(T, 2 * chunk_steps) * B;
  Workspace workspace(Workspace::bytes_for({std::size_t(ring_rows * H) * sizeof(S)}));
  const detail::GradientRows<S> d_pre{workspace.take<S>(std::size_t(ring_rows * H)), H, B,
                                      TimeOrder{T, inputs.reverse}, chunk_steps};
  auto copy_upstream = [&](Index t0, Index t1) {
    MatrixView<S> rows = matrix_view(d_pre.at(t0), (t1 - t0) * B, H, H);
    if (d_hidden) rows = matrix_view(d_hidden + t0 * B * H, rows.rows(), H, H);
    else rows.setZero();
  };
  detail::recurrent_backward_into(weights, inputs, activation, h0, hidden, d_h_last, chunk_steps,
                                  copy_upstream, d_pre, grads);
}

#define BPTT_INSTANTIATE(S)                                                                 \
  template void recurrent_forward<S>(const LayerWeights<S>&, const SequenceInput<S>&,       \
                                     const S*, Activation, S*);                             \
  template void recurrent_backward<S>(const LayerWeights<S>&, const SequenceInput<S>&,      \
                                      Activation, const S*, const S*, const S*, const S*,   \
                                      const LayerGradients<S>&);
BPTT_INSTANTIATE(float)
BPTT_INSTANTIATE(double)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
