// The loss and gradients of a stack of recurrent layers under the softmax head, for the training
// step (bptt/training_step.hpp): each layer's forward over the sequence, the head's loss and
// gradients on the last layer's states, then each layer's backward from the top, the upstream
// gradient of a layer being the input gradient of the layer above.
#pragma once

#include "bptt/optimizer_types.hpp"
#include "bptt/types.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

// The mean loss of token inputs; grads (laid out as params) receives every gradient, h_last
// each layer's state after the last step. h0: a state per layer, (layers, batch, hidden).
template <class S>
double stack_loss_and_grad(const ParameterLayout& layout, const S* params, S* grads,
                           const SequenceInput<S>& inputs, const Targets<S>& targets,
                           const S* h0, S* h_last, Activation activation,
                           ProductOperands operands);

}  // namespace bptt::BPTT_ISA_NAMESPACE
