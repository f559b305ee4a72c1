// The per-step products (step_product.hpp), compiled once per instruction set.
#include "step_product.hpp"

#include "scalars.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
StepProduct<S>::StepProduct(const S* W, Index W_stride, WeightUse use, Index first, Index cols,
                            Index rows, Index depth, Index products, Index all_cols)
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
  packed_weights_ = std::make_shared<Buffer>(packed_size_);
  rhs_block_.resize(round_up(kc_ * std::max<Index>(rows_, Traits::nr)));
  if (use == WeightUse::transposed) pack<Eigen::RowMajor>(W + first * W_stride, W_stride);
  else pack<Eigen::ColMajor>(W + first, W_stride);
}

template <class S>
void StepProduct<S>::accumulate_rows(const S* A, Index A_stride, S* C, Index C_stride,
                                     Index rows) {
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
      gebp(C_transposed.getSubMapper(i2, 0),
           packed_weights_->data() + panel_offsets_[size_t(i * k_panels + k)], rhs_block_.data(),
           actual_mc, actual_kc, rows, S(1));
    }
  }
}

template <class S>
StepProduct<S> StepProduct<S>::sharing_weights(Index rows) const {
  eigen_assert(rows_ > 1 && rows <= rows_);
  StepProduct shared = *this;
  shared.rows_ = rows;
  shared.rhs_block_.resize(round_up(kc_ * std::max<Index>(rows, Traits::nr)));
  return shared;
}

// op(W)ᵀ restricted to this product's columns, read in `Order` from `weights`.
template <class S>
template <int Order>
void StepProduct<S>::pack(const S* weights, Index stride) {
  using LhsMapper = Eigen::internal::const_blas_data_mapper<S, Index, Order>;
  Eigen::internal::gemm_pack_lhs<S, Index, LhsMapper, Traits::mr, Traits::LhsProgress,
                                 typename Traits::LhsPacket4Packing, Order>
      pack_lhs;
  const LhsMapper lhs(weights, stride);
  size_t panel = 0;
  for (Index i2 = 0; i2 < cols_; i2 += mc_)
    for (Index k2 = 0; k2 < depth_; k2 += kc_) {
      pack_lhs(packed_weights_->data() + panel_offsets_[panel++], lhs.getSubMapper(i2, k2),
               std::min(kc_, depth_ - k2), std::min(mc_, cols_ - i2));
    }
}

#define BPTT_INSTANTIATE(S) template class StepProduct<S>;
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
