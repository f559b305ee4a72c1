// The recurrent layer a_t = b + W h_{t-1} + U x_t, h_t = σ(a_t): forward over a whole sequence,
// and backward from any upstream gradient on the hidden states.
//
// Storage: the hidden states of one call live in one contiguous time-major buffer
// (steps + 1, batch, hidden), slot 0 holding h_0, so every step reads and writes contiguous rows
// and every whole-sequence product sees one (steps·batch) × hidden matrix.
#pragma once

#include "bptt/activation.hpp"
#include "bptt/step_product.hpp"
#include "bptt/threads.hpp"
#include "bptt/types.hpp"

#include <algorithm>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

// hidden: (steps + 1)·batch·hidden_size; slot 0 receives h0 (zeros when h0 is null).
template <class S>
void recurrent_forward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                       const S* h0, Activation activation, S* hidden);

// Gradients of the layer given dL/dh_t for every step (d_hidden, (steps, batch, hidden); null
// means zero) and dL/dh_T for the carried state (d_h_last, (batch, hidden); null means zero).
// h0 null means the zero initial state; hidden holds h_1..h_T, (steps, batch, hidden).
template <class S>
void recurrent_backward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads);

namespace detail {

// a_t = b + U x_t for all steps at once: one GEMM for dense inputs, a row gather for tokens.
template <class S>
void project_inputs(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                    MatrixView<S> pre_activation) {
  const Index D = weights.input_size, H = weights.hidden_size, N = pre_activation.rows();
  const ConstMatrixView<S> U = matrix_view(weights.U, H, D, D);
  const ConstRowVectorView<S> b(weights.b, H);
  if (inputs.tokens) {
    // U x_t with a one-hot x_t is column x_t of U: gather rows of Uᵀ, contiguous in memory.
    const RowMatrix<S> U_transposed = U.transpose();
    for (Index r = 0; r < N; ++r) pre_activation.row(r) = U_transposed.row(inputs.tokens[r]) + b;
  } else {
    pre_activation.rowwise() = b;
    pre_activation.noalias() += matrix_view(inputs.dense, N, D, D) * U.transpose();
  }
}

// The step loop of the forward pass: h_t = σ(pre_t + W h_{t-1}), in place in slot t.
template <class S>
void forward_recurrence(const S* W, Index steps, Index batch, Index hidden_size,
                        Activation activation, S* hidden) {
  const Index B = batch, H = hidden_size;
  const int threads = recurrence_threads(B, H);
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const auto [first, last] = column_share(H, this_thread_index(), this_region_threads());
    // W h_{t-1} in row form is h_{t-1}·Wᵀ; Wᵀ is W's buffer read column-major.
    StepProduct<S, Eigen::ColMajor> product(B, last - first, H);
    for (Index t = 1; t <= steps; ++t) {
      const S* h_prev = hidden + (t - 1) * B * H;
      S* h = hidden + t * B * H;
      product.accumulate(h_prev, H, W + first * H, H, h + first, H);
      apply_activation(activation, matrix_view(h + first, B, last - first, H));
#pragma omp barrier
    }
  }
}

// The step loop of the backward pass, in place in d_pre (rows t·batch .. of step t):
// da_t = (upstream_t + Wᵀ da_{t+1}) ⊙ σ'(a_t), where upstream_t (dL/dh_t from outside the
// layer, dL/dh_T added at the last step) is written into d_pre by fill_upstream(t0, t1) for the
// steps [t0, t1) just before they are needed, chunk by chunk from the end.
template <class S, class FillUpstream>
void backward_recurrence(const S* W, Index steps, Index batch, Index hidden_size,
                         Activation activation, const S* hidden, const S* d_h_last,
                         Index chunk_steps, FillUpstream&& fill_upstream, S* d_pre,
                         Index d_pre_stride) {
  const Index B = batch, H = hidden_size, ld = d_pre_stride;
  const int threads = recurrence_threads(B, H);
  for (Index chunk_end = steps; chunk_end > 0; chunk_end -= chunk_steps) {
    const Index chunk_begin = std::max<Index>(0, chunk_end - chunk_steps);
    fill_upstream(chunk_begin, chunk_end);
#pragma omp parallel num_threads(threads) if (threads > 1)
    {
      const auto [first, last] = column_share(H, this_thread_index(), this_region_threads());
      StepProduct<S, Eigen::RowMajor> product(B, last - first, H);
      for (Index t = chunk_end - 1; t >= chunk_begin; --t) {
        S* da = d_pre + t * B * ld;
        auto da_share = matrix_view(da + first, B, last - first, ld);
        if (t + 1 < steps) {
          product.accumulate(da + B * ld, ld, W + first, H, da + first, ld);
        } else if (d_h_last) {
          da_share += matrix_view(d_h_last + first, B, last - first, H);
        }
        multiply_by_activation_derivative(activation, da_share,
                                          matrix_view(hidden + t * B * H + first, B, last - first, H));
#pragma omp barrier
      }
    }
  }
}

// dW, dU, db, dh0 and dx from the pre-activation gradients da (steps·batch rows of d_pre).
template <class S>
void parameter_gradients(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                         const S* h0, const S* hidden, const S* d_h_last,
                         ConstMatrixView<S> d_pre, const LayerGradients<S>& grads) {
  const Index D = weights.input_size, H = weights.hidden_size;
  const Index B = inputs.batch, N = inputs.steps * inputs.batch;
  MatrixView<S> dU = matrix_view(grads.U, H, D, D);
  MatrixView<S> dW = matrix_view(grads.W, H, H, H);
  RowVectorView<S> db(grads.b, H);
  MatrixView<S> dh0 = matrix_view(grads.h0, B, H, H);
  if (N == 0) {
    dU.setZero();
    dW.setZero();
    db.setZero();
    if (d_h_last) dh0 = matrix_view(d_h_last, B, H, H);
    else dh0.setZero();
    if (grads.inputs) matrix_view(grads.inputs, N, D, D).setZero();
    return;
  }
  const ConstMatrixView<S> W = matrix_view(weights.W, H, H, H);
  // dh0 = Wᵀ da_1
  dh0.noalias() = d_pre.topRows(B) * W;
  // dW = Σ_t da_t h_{t-1}ᵀ: one product over all steps·batch rows when h_0 sits just before h_1.
  const ConstMatrixView<S> previous = matrix_view(hidden, N - B, H, H);
  if (h0 && h0 + B * H == hidden) {
    dW.noalias() = d_pre.transpose() * matrix_view(h0, N, H, H);
  } else {
    dW.noalias() = d_pre.bottomRows(N - B).transpose() * previous;
    if (h0) dW.noalias() += d_pre.topRows(B).transpose() * matrix_view(h0, B, H, H);
  }
  // db = Σ_t da_t
  db.setZero();
  for (Index r = 0; r < N; ++r) db += d_pre.row(r);
  if (inputs.tokens) {
    // dU = Σ_t da_t x_tᵀ with one-hot x_t: a scatter-add into rows of dUᵀ, then one transpose.
    RowMatrix<S> dU_transposed = RowMatrix<S>::Zero(D, H);
    for (Index r = 0; r < N; ++r) dU_transposed.row(inputs.tokens[r]) += d_pre.row(r);
    dU = dU_transposed.transpose();
  } else {
    const ConstMatrixView<S> X = matrix_view(inputs.dense, N, D, D);
    dU.noalias() = d_pre.transpose() * X;
    // dx_t = Uᵀ da_t
    if (grads.inputs)
      matrix_view(grads.inputs, N, D, D).noalias() = d_pre * matrix_view(weights.U, H, D, D);
  }
}

// The backward pass with the upstream gradient supplied chunk by chunk (see backward_recurrence);
// d_pre is caller-owned scratch of steps·batch rows, row stride d_pre_stride >= hidden_size.
template <class S, class FillUpstream>
void recurrent_backward_into(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                             Activation activation, const S* h0, const S* hidden,
                             const S* d_h_last, Index chunk_steps, FillUpstream&& fill_upstream,
                             S* d_pre, Index d_pre_stride, const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size, N = inputs.steps * inputs.batch;
  if (N > 0) {
    backward_recurrence(weights.W, inputs.steps, inputs.batch, H, activation, hidden, d_h_last,
                        chunk_steps, fill_upstream, d_pre, d_pre_stride);
  }
  parameter_gradients(weights, inputs, h0, hidden, d_h_last,
                      matrix_view(static_cast<const S*>(d_pre), N, H, d_pre_stride), grads);
}

}  // namespace detail

template <class S>
void recurrent_forward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                       const S* h0, Activation activation, S* hidden) {
  const Index B = inputs.batch, H = weights.hidden_size, N = inputs.steps * inputs.batch;
  MatrixView<S> initial = matrix_view(hidden, B, H, H);
  if (h0) initial = matrix_view(h0, B, H, H);
  else initial.setZero();
  if (N == 0) return;
  detail::project_inputs(weights, inputs, matrix_view(hidden + B * H, N, H, H));
  detail::forward_recurrence(weights.W, inputs.steps, B, H, activation, hidden);
}

template <class S>
void recurrent_backward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size, N = inputs.steps * inputs.batch;
  RowMatrix<S> d_pre(N, H);
  auto copy_upstream = [&](Index, Index) {
    if (d_hidden) d_pre = matrix_view(d_hidden, N, H, H);
    else d_pre.setZero();
  };
  detail::recurrent_backward_into(weights, inputs, activation, h0, hidden, d_h_last,
                                  inputs.steps, copy_upstream, d_pre.data(), H, grads);
}

#define BPTT_DECLARE_RECURRENT_LAYER(S, EXTERN)                                                \
  EXTERN template void recurrent_forward<S>(const LayerWeights<S>&, const SequenceInput<S>&,   \
                                            const S*, Activation, S*);                        \
  EXTERN template void recurrent_backward<S>(const LayerWeights<S>&, const SequenceInput<S>&,  \
                                             Activation, const S*, const S*, const S*,        \
                                             const S*, const LayerGradients<S>&);
BPTT_DECLARE_RECURRENT_LAYER(float, extern)
BPTT_DECLARE_RECURRENT_LAYER(double, extern)

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
