// The softmax head on its own: o_t = c + V h_t, ŷ_t = softmax(o_t), L = −Σ_t y_t · log ŷ_t, over
// `rows` hidden states (rows × hidden_size, row-major), for composing with other layers.
#pragma once

#include "bptt/types.hpp"

#include <cstddef>

namespace bptt {

// logits (rows × output_size) = hidden Vᵀ + c.
template <class S>
void head_logits(const HeadWeights<S>& weights, const S* hidden, Index rows, S* logits);

// Returns L over the rows (Reduction::mean: divided by the targets that count, ids other than
// -1, and 0 when none does); writes dV, dc and dL/dh for every row into d_hidden
// (rows × hidden_size).
template <class S>
double head_loss_and_grad(const HeadWeights<S>& weights, const S* hidden, Index rows,
                          const Targets<S>& targets, Reduction reduction,
                          const HeadGradients<S>& grads, S* d_hidden);

// Scratch bytes that head_loss_and_grad allocates: the rows' logits.
std::size_t head_loss_and_grad_scratch_bytes(Index rows, Index output_size,
                                             std::size_t scalar_bytes);

}  // namespace bptt
