// C += A·Wᵀ or C += A·W for the per-step products of the recurrence, where A (batch × hidden)
// changes every step and W (hidden × hidden) never does: W is packed for Eigen's GEMM kernel once,
// before the step loop, instead of once per step. With a small batch, packing W every step would
// cost as much as the product itself.
#pragma once

#include "matrix_views.hpp"
#include "vector_step_product.hpp"

#include <algorithm>
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
              Index depth, Index products, Index all_cols = -1)
      : rows_(rows), cols_(cols), depth_(depth) {
    if (rows_ == 0 || cols_ == 0 || depth_ == 0) return;
    if (rows_ == 1) {  // one sequence: matrix-vector products
      if (VectorStepProduct<S>::pays(all_cols < 0 ? cols : all_cols, depth, products)) {
        vector_.emplace(W, W_stride, use, first, cols, depth);
      } else {
        vector_weights_ = W + (use == WeightUse::transposed ? first * W_stride : first);
        vector_weights_stride_ = W_stride;
        vector_weights_transposed_ = use == WeightUse::transposed;
      }
      return;
    }
    kc_ = depth_;
    mc_ = cols_;
    Index nc = rows_;
    Eigen::internal::computeProductBlockingSizes<S, S>(kc_, mc_, nc, Index(1));
    // Every (mc × kc) panel of op(W)ᵀ, packed once, each starting on a vector boundary.
    for (Index i2 = 0; i2 < cols_; i2 += mc_)
      for (Index k2 = 0; k2 < depth_; k2 += kc_) {
        panel_offsets_.push_back(packed_size_);
        packed_size_ += round_up(std::min(mc_, cols_ - i2) * std::min(kc_, depth_ - k2));
      }
    packed_weights_.resize(packed_size_);
    rhs_block_.resize(round_up(kc_ * std::max<Index>(rows_, Traits::nr)));
    if (use == WeightUse::transposed) pack<Eigen::RowMajor>(W + first * W_stride, W_stride);
    else pack<Eigen::ColMajor>(W + first, W_stride);
  }

  // C (rows × cols, row stride C_stride) += A (rows × depth, row stride A_stride) · op(W).
  void accumulate(const S* A, Index A_stride, S* C, Index C_stride) {
    accumulate_rows(A, A_stride, C, C_stride, rows_);
  }

  // The same for the first `rows` rows of A and C only, at most the rows the product was made
  // for (one, if it was made for one).
  void accumulate_rows(const S* A, Index A_stride, S* C, Index C_stride, Index rows) {
    if (rows == 0 || cols_ == 0 || depth_ == 0) return;
    if (rows_ == 1) {
      if (vector_) {
        vector_->accumulate(A, C);
        return;
      }
      // W read in place, by Eigen's matrix-vector product: c += a·Wᵀ over W's rows [first,
      // first + cols), or c += a·W over its columns.
      const ConstRowVectorView<S> a(A, depth_);
      RowVectorView<S> c(C, cols_);
      const bool transposed = vector_weights_transposed_;
      const auto weights = matrix_view(vector_weights_, transposed ? cols_ : depth_,
                                       transposed ? depth_ : cols_, vector_weights_stride_);
      if (transposed) c.noalias() += a * weights.transpose();
      else c.noalias() += a * weights;
      return;
    }
    const RhsMapper A_transposed(A, A_stride);
    const ResMapper C_transposed(C, C_stride);
    Eigen::internal::gemm_pack_rhs<S, Index, RhsMapper, Traits::nr, Eigen::ColMajor> pack_rhs;
    Eigen::internal::gebp_kernel<S, S, Index, ResMapper, Traits::mr, Traits::nr, false, false> gebp;
    const Index k_panels = (depth_ + kc_ - 1) / kc_;
    for (Index k2 = 0, k = 0; k2 < depth_; k2 += kc_, ++k) {
      const Index actual_kc = std::min(kc_, depth_ - k2);
      pack_rhs(rhs_block_.data(), A_transposed.getSubMapper(k2, 0), actual_kc, rows);
      for (Index i2 = 0, i = 0; i2 < cols_; i2 += mc_, ++i) {
        const Index actual_mc = std::min(mc_, cols_ - i2);
        gebp(C_transposed.getSubMapper(i2, 0), packed_weights_.data() + panel_offsets_[size_t(i * k_panels + k)],
             rhs_block_.data(), actual_mc, actual_kc, rows, S(1));
      }
    }
  }

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
  void pack(const S* weights, Index stride) {
    using LhsMapper = Eigen::internal::const_blas_data_mapper<S, Index, Order>;
    Eigen::internal::gemm_pack_lhs<S, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                   typename Traits::LhsPacket4Packing, Order>
        pack_lhs;
    const LhsMapper lhs(weights, stride);
    size_t panel = 0;
    for (Index i2 = 0; i2 < cols_; i2 += mc_)
      for (Index k2 = 0; k2 < depth_; k2 += kc_) {
        pack_lhs(packed_weights_.data() + panel_offsets_[panel++], lhs.getSubMapper(i2, k2),
                 std::min(kc_, depth_ - k2), std::min(mc_, cols_ - i2));
      }
  }

  Index rows_, cols_, depth_;
  std::optional<VectorStepProduct<S>> vector_;  // rows_ == 1, when it pays
  const S* vector_weights_ = nullptr;           // rows_ == 1 otherwise: W itself
  Index vector_weights_stride_ = 0;
  bool vector_weights_transposed_ = false;
  Index kc_ = 0, mc_ = 0;
  Index packed_size_ = 0;
  std::vector<Index> panel_offsets_;
  Buffer packed_weights_;
  Buffer rhs_block_;
};

}  // namespace bptt::BPTT_ISA_NAMESPACE
