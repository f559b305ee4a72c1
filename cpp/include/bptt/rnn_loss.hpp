// The whole model of Goodfellow et al., Deep Learning, 10.2.2: the recurrent layer composed with
// the softmax head, L = −Σ_t y_t · log softmax(c + V h_t), and its gradients by back-propagation
// through time.
#pragma once

#include "bptt/memory_budget.hpp"
#include "bptt/types.hpp"

#include <cstddef>

namespace bptt {

// Returns L; writes every gradient and h_last (batch × hidden, the state after the last step).
// h0 null means the zero initial state. With inputs.lengths, the targets at padded positions
// must be -1 (no loss), or L would count predictions that have no input; inputs.reverse is not
// for the whole model (std::invalid_argument). `done`, if given, runs once the gradients are
// written (and every read of the weights is over). memory_budget: bytes of working memory at
// most (0: none; see LossMemoryPlan); the results are the same bits for every budget.
template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done = nullptr,
                         std::size_t memory_budget = 0);

}  // namespace bptt
