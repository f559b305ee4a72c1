// The whole model of Goodfellow et al., Deep Learning, 10.2.2: the recurrent layer composed with
// the softmax head, L = −Σ_t y_t · log softmax(c + V h_t), and its gradients by back-propagation
// through time.
#pragma once

#include "bptt/types.hpp"

#include <cstddef>

namespace bptt {

// Scratch bytes that rnn_loss_and_grad allocates, for the schedule that needs the most: the
// hidden states (steps + 1)·batch·hidden, the rows of logits and gradients, and a chunk buffer.
std::size_t rnn_loss_and_grad_scratch_bytes(const ProblemSize& size, std::size_t scalar_bytes);

// Returns L; writes every gradient and h_last (batch × hidden, the state after the last step).
// h0 null means the zero initial state. With inputs.lengths, the targets at padded positions
// must be -1 (no loss), or L would count predictions that have no input. `done`, if given, runs
// once the gradients are written (and every read of the weights is over).
template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done = nullptr);

}  // namespace bptt
