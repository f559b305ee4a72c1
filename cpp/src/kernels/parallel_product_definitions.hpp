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

}  // namespace detail

template <class S, Orientation LhsOrientation, Orientation RhsOrientation>
void multiply_views(MatrixView<S> dst, ConstMatrixView<S> lhs_view, ConstMatrixView<S> rhs_view,
                    bool accumulate) {
  const auto lhs = detail::oriented<LhsOrientation>(lhs_view);
  const auto rhs = detail::oriented<RhsOrientation>(rhs_view);
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
  dst.noalias() = lhs * rhs;
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
