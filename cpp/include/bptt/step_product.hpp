// C += A·B for the small per-step products of the recurrence, with Eigen's packing buffers
// allocated once before the step loop instead of once per product.
#pragma once

#include "bptt/types.hpp"

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

// A is row-major (rows × depth); B is (depth × cols) stored in `RhsOrder`; C is row-major.
// Uses Eigen 3.4's internal GEMM entry point, the one its own products call, because the public
// expression API offers no way to keep the blocking workspace across calls.
template <class S, int RhsOrder>
class StepProduct {
 public:
  StepProduct(Index rows, Index cols, Index depth)
      : rows_(rows), cols_(cols), depth_(depth), blocking_(rows, cols, depth, 1, true) {
    blocking_.allocateAll();
  }

  void accumulate(const S* a, Index a_stride, const S* b, Index b_stride, S* c, Index c_stride) {
    if (rows_ == 0 || cols_ == 0 || depth_ == 0) return;
    Gemm::run(rows_, cols_, depth_, a, a_stride, b, b_stride, c, 1, c_stride, S(1), blocking_,
              nullptr);
  }

 private:
  using Gemm = Eigen::internal::general_matrix_matrix_product<
      Index, S, Eigen::RowMajor, false, S, RhsOrder, false, Eigen::RowMajor, 1>;
  using Blocking = Eigen::internal::gemm_blocking_space<Eigen::RowMajor, S, S, Eigen::Dynamic,
                                                        Eigen::Dynamic, Eigen::Dynamic>;
  Index rows_, cols_, depth_;
  Blocking blocking_;
};

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
