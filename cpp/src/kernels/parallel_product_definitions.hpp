// The products of parallel_product.hpp, defined for parallel_product_{float,double}.cpp, which
// instantiate them for every form the kernels use: one scalar type a file, each about half the
// time of both.
#pragma once

#include "parallel_product.hpp"
#include "team.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

template <Orientation O, class S>
auto oriented(const ConstMatrixView<S>& view) {
  if constexpr (O == Orientation::transposed) return view.transpose();
  else return view;
}

// Eigen evaluates a product whose rows, columns and depth add up to less than
// EIGEN_GEMM_TO_COEFFBASED_THRESHOLD coefficient by coefficient, vectorized from the result's
// first aligned address: the values before it take a scalar path whose sums round otherwise,
// so that their bits would depend on where the result lies in memory. Such small products are
// taken here instead, each value summed over the depth in order wherever it lies. Returns
// whether the product was one.
template <class Dst, class Lhs, class Rhs>
bool small_product(Dst& dst, const Lhs& lhs, const Rhs& rhs, bool accumulate) {
  const Index depth = lhs.cols();
  if (depth == 0 || dst.rows() + dst.cols() + depth >= EIGEN_GEMM_TO_COEFFBASED_THRESHOLD)
    return false;
  for (Index i = 0; i < dst.rows(); ++i) {
    for (Index j = 0; j < dst.cols(); ++j) {
      auto sum = lhs(i, 0) * rhs(0, j);
      for (Index k = 1; k < depth; ++k) sum += lhs(i, k) * rhs(k, j);
      dst(i, j) = accumulate ? dst(i, j) + sum : sum;
    }
  }
  return true;
}

}  // namespace detail

template <class S, Orientation LhsOrientation, Orientation RhsOrientation>
void multiply_views(MatrixView<S> dst, ConstMatrixView<S> lhs_view, ConstMatrixView<S> rhs_view,
                    bool accumulate) {
  const auto lhs = detail::oriented<LhsOrientation>(lhs_view);
  const auto rhs = detail::oriented<RhsOrientation>(rhs_view);
  if (detail::small_product(dst, lhs, rhs, accumulate)) return;
  const Index rows = dst.rows();
  const double flops = 2.0 * double(rows) * double(dst.cols()) * double(lhs.cols());
  const int threads = product_threads(flops, rows);
  if (threads <= 1) {
    if (accumulate) dst.noalias() += lhs * rhs;
    else dst.noalias() = lhs * rhs;
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const auto [first, last] =
        row_share(rows, this_thread_index(), this_region_threads(), kProductRowAlignment<S>);
    auto part = dst.middleRows(first, last - first);
    if (accumulate) part.noalias() += lhs.middleRows(first, last - first) * rhs;
    else part.noalias() = lhs.middleRows(first, last - first) * rhs;
  }
}

template <class S>
void assign_product(MatrixView<S> dst, ConstMatrixView<S> lhs, ConstMatrixView<S> rhs) {
  if (!detail::small_product(dst, lhs, rhs, false)) dst.noalias() = lhs * rhs;
}
template <class S>
void assign_product(RowVectorView<S> dst, ConstRowVectorView<S> lhs, ConstMatrixView<S> rhs) {
  dst.noalias() = lhs * rhs;
}

#define BPTT_DEFINE_PRODUCT(S, L, R)                                                  \
  template void multiply_views<S, L, R>(MatrixView<S>, ConstMatrixView<S>, ConstMatrixView<S>, \
                                        bool);
#define BPTT_DEFINE_PRODUCTS(S)                                                             \
  BPTT_PRODUCT_FORMS(BPTT_DEFINE_PRODUCT, S)                                                \
  template void assign_product<S>(MatrixView<S>, ConstMatrixView<S>, ConstMatrixView<S>); \
  template void assign_product<S>(RowVectorView<S>, ConstRowVectorView<S>, ConstMatrixView<S>);

}  // namespace bptt::BPTT_ISA_NAMESPACE
