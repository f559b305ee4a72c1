// The softmax head's kernels o_t = c + V h_t, ŷ_t = softmax(o_t), L = −Σ_t y_t · log ŷ_t, over the
// rows of a (steps·batch) × hidden matrix of hidden states, piece by piece, for the head on its
// own (softmax_head.cpp) and the whole model (rnn_loss.cpp, rnn_loss_pipeline_*.cpp).
#pragma once

#include "matrix_views.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

// logits = hidden Vᵀ + c, (rows × output_size).
template <class S>
void head_logits(const HeadWeights<S>& weights, ConstMatrixView<S> hidden, MatrixView<S> logits);

// The number of targets that count towards the loss: ids other than -1, or every soft row.
template <class S>
Index counted_targets(const Targets<S>& targets, Index rows);

// The targets of the rows from `row` on.
template <class S>
Targets<S> targets_from(const Targets<S>& targets, Index row, Index output_size) {
  Targets<S> rest;
  if (targets.ids) rest.ids = targets.ids + row;
  if (targets.soft) rest.soft = targets.soft + row * output_size;
  return rest;
}

// How a reduction over `counted` targets scales dL/do (1/counted for the mean) and turns the
// rows' summed −Σ y log ŷ into L; with nothing counted, L = 0 (not 0/0 for the mean).
struct LossReduction {
  Reduction reduction;
  Index counted;

  template <class S>
  S gradient_scale() const {
    return reduction == Reduction::mean && counted > 0 ? S(1) / S(counted) : S(1);
  }
  double loss(double summed) const {
    if (counted == 0) return 0.0;
    return reduction == Reduction::mean ? summed / double(counted) : summed;
  }
};

// One fused pass over the rows, in place: logits become dL/do = softmax(o)·Σy − y (divided by the
// counted targets for Reduction::mean) through a stable log-softmax, without a separate
// probability tensor. Returns L.
template <class S>
double softmax_cross_entropy(MatrixView<S> logits, const Targets<S>& targets, Reduction reduction);

// The same pass over some of the rows (targets as seen from the first of them), with the
// gradient scaled by `scale`, on the calling thread: returns their −Σ y log ŷ, unscaled.
template <class S>
double softmax_cross_entropy_rows(MatrixView<S> logits, const Targets<S>& targets, S scale);

// dV = Σ_t dO_t h_tᵀ and dc = Σ_t dO_t (added to them with accumulate).
template <class S>
void head_parameter_gradients(ConstMatrixView<S> hidden, ConstMatrixView<S> d_logits,
                              const HeadGradients<S>& grads, bool accumulate = false);

// dL/dh_t = Vᵀ dO_t for every row.
template <class S>
void head_hidden_gradient(const HeadWeights<S>& weights, ConstMatrixView<S> d_logits,
                          MatrixView<S> d_hidden);

}  // namespace bptt::BPTT_ISA_NAMESPACE
