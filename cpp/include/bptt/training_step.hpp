// One step of `bptt train` in one call of the core: the mean loss and the gradients of a chunk of
// streams, clipping by the gradients' global norm as torch.nn.utils.clip_grad_norm_ does, and the
// optimizer's update. Parameters, gradients and optimizer states each live in one vector holding
// every layer's U, W and b, then V and c, one after the other, row-major (ParameterLayout).
#pragma once

#include "bptt/optimizer_types.hpp"
#include "bptt/types.hpp"

#include <cstddef>

namespace bptt {

// grads receives the gradients (clipped), h_last the state after the last step; the parameters
// and the optimizer's states are updated in place unless the loss or the norm is not finite.
// With layout.layers = L > 1, h0 and h_last hold a state (batch, hidden) per layer, layer by
// layer, and the gradients are those of BPTT through the stack: the head's, then each layer's
// from the layer above it, by recurrent_forward, head_loss_and_grad and recurrent_backward
// (bptt/recurrent_layer.hpp, bptt/softmax_head.hpp): the same bits as those calls.
// memory_budget bounds the loss's working memory as in rnn_loss_and_grad (0: none; one layer
// only); operands are those of the loss's products (bptt/types.hpp).
// The norm's sum of squares is taken in double, over the layers' parameters and the head's, each
// in an order independent of where the vector lies in memory: the same on one thread or two.
template <class S>
StepOutcome training_step(const ParameterLayout& layout, S* params, S* grads,
                          const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                          S* h_last, Activation activation, double max_norm,
                          const OptimizerUpdate<S>& update, std::size_t memory_budget = 0,
                          ProductOperands operands = ProductOperands::native);

// The working memory of one training_step call, in bytes: the loss's (rnn_loss_working_bytes)
// for one layer; for a stack, every layer's states, two buffers of upstream gradients
// (steps, batch, hidden) and the head's logits.
std::size_t training_step_working_bytes(const ParameterLayout& layout, Index steps, Index batch,
                                        std::size_t scalar_bytes, std::size_t memory_budget = 0,
                                        ProductOperands operands = ProductOperands::native);

}  // namespace bptt
