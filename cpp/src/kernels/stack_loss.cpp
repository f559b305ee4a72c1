// BPTT through a stack of recurrent layers (stack_loss.hpp), by the layer's and the head's own
// kernels: the same calls, on the same rows, as the layer and head operations composed.
#include "stack_loss.hpp"

#include "entry_points.hpp"
#include "scalars.hpp"

#include "../workspace.hpp"

#include <algorithm>
#include <utility>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
double stack_loss_and_grad(const ParameterLayout& layout, const S* params, S* grads,
                           const SequenceInput<S>& inputs, const Targets<S>& targets,
                           const S* h0, S* h_last, Activation activation,
                           ProductOperands operands) {
  const Index T = inputs.steps, B = inputs.batch, H = layout.hidden_size;
  const Index L = layout.layers, state = B * H;
  const std::size_t slots = std::size_t((T + 1) * state), rows = std::size_t(T * state);
  // Each layer's states are a piece of their own, aligned on its own.
  Workspace workspace(std::size_t(L) * Workspace::bytes_for({slots * sizeof(S)}) +
                      Workspace::bytes_for({rows * sizeof(S), rows * sizeof(S),
                                            std::size_t(state) * sizeof(S)}));
  // Layer k's states, (T + 1) slots of (B, H) with h0 in slot 0 (bptt/recurrent_layer.hpp).
  std::vector<S*> states(static_cast<std::size_t>(L));
  for (S*& layer_states : states) layer_states = workspace.take<S>(slots);
  S* d_hidden = workspace.take<S>(rows);        // dL/dh_t of the layer being taken back
  S* d_hidden_below = workspace.take<S>(rows);  // its input gradient: the layer below's
  S* d_h0 = workspace.take<S>(std::size_t(state));  // dh0 is not a parameter's: not kept

  auto weights = [&](Index k) {
    return LayerWeights<S>{params + layout.U(k), params + layout.W(k), params + layout.b(k),
                           layout.layer_input_size(k), H, operands};
  };
  auto layer_inputs = [&](Index k) {
    SequenceInput<S> layer_input{T, B};
    if (k == 0) layer_input.tokens = inputs.tokens;
    else layer_input.dense = states[std::size_t(k - 1)] + state;
    return layer_input;
  };

  for (Index k = 0; k < L; ++k) {
    S* const layer_states = states[std::size_t(k)];
    recurrent_forward(weights(k), layer_inputs(k), h0 + k * state, activation, layer_states);
    std::copy_n(layer_states + T * state, state, h_last + k * state);
  }
  const HeadWeights<S> head{params + layout.V(), params + layout.c(), H, layout.output_size,
                            operands};
  const double loss =
      head_loss_and_grad(head, states[std::size_t(L - 1)] + state, T * B, targets,
                         Reduction::mean, HeadGradients<S>{grads + layout.V(), grads + layout.c()},
                         d_hidden);
  for (Index k = L - 1; k >= 0; --k) {
    const LayerGradients<S> layer_grads{grads + layout.U(k), grads + layout.W(k),
                                        grads + layout.b(k), d_h0,
                                        k > 0 ? d_hidden_below : nullptr};
    const S* const no_carried_gradient = nullptr;  // dL/dh_T: the next chunk is not seen
    recurrent_backward(weights(k), layer_inputs(k), activation, h0 + k * state,
                       states[std::size_t(k)] + state, d_hidden, no_carried_gradient,
                       layer_grads);
    std::swap(d_hidden, d_hidden_below);
  }
  return loss;
}

#define BPTT_INSTANTIATE(S)                                                                  \
  template double stack_loss_and_grad<S>(const ParameterLayout&, const S*, S*,               \
                                         const SequenceInput<S>&, const Targets<S>&, const S*, \
                                         S*, Activation, ProductOperands);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
