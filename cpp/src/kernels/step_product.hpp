// C += A·Wᵀ or C += A·W for the per-step products of the recurrence, where A (batch × hidden)
// changes every step and W (hidden × hidden) never does: W is packed for Eigen's GEMM kernel once,
// before the step loop, instead of once per step. With a small batch, packing W every step would
// cost as much as the product itself.
#pragma once

#include "matrix_views.hpp"
#include "scalars.hpp"
#include "vector_step_product.hpp"

#include <algorithm>
#include <memory>
#include <optional>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {

// Uses Eigen 3.4's internal packing routines and GEBP kernel, the ones its own GEMM calls, since
// the public API cannot keep one operand packed across products. Works column-major: Cᵀ (cols ×
// rows) += op(W)ᵀ (cols × depth) · Aᵀ (depth × rows), so W is the packed left-hand side.
template <class S>
class StepProduct {
 public:
  // The columns [first, first + cols) of C, from a W of size depth × depth (row-major, W_stride),
  // for about `products` products; a share of a product `all_cols` wide (which decides the
  // kernel, so that every share of one product takes the same).
  StepProduct(const S* W, Index W_stride, WeightUse use, Index first, Index cols, Index rows,
              Index depth, Index products, Index all_cols = -1);

  // C (rows × cols, row stride C_stride) += A (rows × depth, row stride A_stride) · op(W).
  void accumulate(const S* A, Index A_stride, S* C, Index C_stride) {
    accumulate_rows(A, A_stride, C, C_stride, rows_);
  }

  // The same for the first `rows` rows of A and C only, at most the rows the product was made
  // for (one, if it was made for one).
  void accumulate_rows(const S* A, Index A_stride, S* C, Index C_stride, Index rows);

  // A product of the same packed W (not copied) and the same blocking, for `rows` rows at most:
  // for each thread of a team that shares a step by rows. Not for a product made for one row.
  StepProduct sharing_weights(Index rows) const;

 private:
  using Traits = Eigen::internal::gebp_traits<S, S>;
  using RhsMapper = Eigen::internal::const_blas_data_mapper<S, Index, Eigen::ColMajor>;
  using ResMapper = Eigen::internal::blas_data_mapper<S, Index, Eigen::ColMajor>;
  using Buffer = Eigen::Matrix<S, Eigen::Dynamic, 1>;  // aligned, as the kernel's loads need

  static Index round_up(Index n) {
    constexpr Index kVector = 64 / Index(sizeof(S));
    return (n + kVector - 1) / kVector * kVector;
  }

  // op(W)ᵀ restricted to this product's columns, read in `Order` from `weights`.
  template <int Order>
  void pack(const S* weights, Index stride);

  Index rows_, cols_, depth_;
  std::optional<VectorStepProduct<S>> vector_;  // rows_ == 1, when it pays
  const S* vector_weights_ = nullptr;           // rows_ == 1 otherwise: W itself
  Index vector_weights_stride_ = 0;
  bool vector_weights_transposed_ = false;
  Index kc_ = 0, mc_ = 0;
  Index packed_size_ = 0;
  std::vector<Index> panel_offsets_;
  std::shared_ptr<Buffer> packed_weights_;  // shared by the products sharing_weights makes
  Buffer rhs_block_;
};

// Compiled in step_product.cpp, for each scalar.
#define BPTT_DECLARE_STEP_PRODUCT(S) extern template class StepProduct<S>;
BPTT_FOR_EACH_SCALAR(BPTT_DECLARE_STEP_PRODUCT)
#undef BPTT_DECLARE_STEP_PRODUCT

}  // namespace bptt::BPTT_ISA_NAMESPACE
