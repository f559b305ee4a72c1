// The whole-sequence products, split across the thread budget by rows of the result when they
// are large enough to pay for a fork and join, and run on one thread otherwise. Eigen's own
// OpenMP parallelism is switched off (EIGEN_DONT_PARALLELIZE): it forks even for products that
// take microseconds, which on a busy machine can cost milliseconds.
//
// Every value of a product must be the same bits however many threads share it. Eigen's kernel
// (GEBP) sums each value over k in an order that depends on where the value falls in the
// kernel's register blocks: the result's columns go by blocks of Traits::mr (a value in a full
// block is summed in one chain, one in the last, partial block in others), its rows by blocks
// of Traits::nr. A split at a multiple of the block keeps every value where it falls on one
// thread; so do shares of a per-step product (step_product.hpp).
//
// Every product goes through one function per scalar and operand orientation, compiled in
// parallel_product_{float,double}.cpp alone: Eigen's product kernels are instantiated once per
// instruction set rather than once per expression type at each call, and the other kernel
// sources compile without them (in about half the time).
#pragma once

#include "matrix_views.hpp"
#include "scalars.hpp"

#include <type_traits>

namespace bptt::BPTT_ISA_NAMESPACE {

// Multiples at which a product's result may be split across threads: of its rows (the kernel's
// columns) and of its columns (the kernel's rows).
template <class S>
constexpr Index kProductRowAlignment = Eigen::internal::gebp_traits<S, S>::nr;
template <class S>
constexpr Index kProductColumnAlignment = Eigen::internal::gebp_traits<S, S>::mr;

// An operand of a product: a row-major view, read as it is or transposed.
enum class Orientation { as_stored, transposed };

// dst = op(lhs)·op(rhs), or dst += op(lhs)·op(rhs) with accumulate; dst and op(lhs) split by
// rows alike.
template <class S, Orientation LhsOrientation, Orientation RhsOrientation>
void multiply_views(MatrixView<S> dst, ConstMatrixView<S> lhs, ConstMatrixView<S> rhs,
                    bool accumulate);

#define BPTT_PRODUCT_FORMS(X, S)                                       \
  X(S, Orientation::as_stored, Orientation::as_stored)                 \
  X(S, Orientation::transposed, Orientation::as_stored)                \
  X(S, Orientation::as_stored, Orientation::transposed)
#define BPTT_DECLARE_PRODUCT(S, L, R)                                  \
  extern template void multiply_views<S, L, R>(MatrixView<S>, ConstMatrixView<S>, \
                                               ConstMatrixView<S>, bool);
#define BPTT_DECLARE_PRODUCTS(S) BPTT_PRODUCT_FORMS(BPTT_DECLARE_PRODUCT, S)
BPTT_FOR_EACH_SCALAR(BPTT_DECLARE_PRODUCTS)
#undef BPTT_DECLARE_PRODUCTS
#undef BPTT_DECLARE_PRODUCT

// dst = lhs·rhs on the calling thread, for the small products of dh0: a block of rows, or a row.
template <class S>
void assign_product(MatrixView<S> dst, ConstMatrixView<S> lhs, ConstMatrixView<S> rhs);
template <class S>
void assign_product(RowVectorView<S> dst, ConstRowVectorView<S> lhs, ConstMatrixView<S> rhs);
#define BPTT_DECLARE_ONE_THREAD_PRODUCTS(S)                                                   \
  extern template void assign_product<S>(MatrixView<S>, ConstMatrixView<S>, ConstMatrixView<S>); \
  extern template void assign_product<S>(RowVectorView<S>, ConstRowVectorView<S>,            \
                                         ConstMatrixView<S>);
BPTT_FOR_EACH_SCALAR(BPTT_DECLARE_ONE_THREAD_PRODUCTS)
#undef BPTT_DECLARE_ONE_THREAD_PRODUCTS

// A row-major expression with direct access (a view, or a block of whole rows of one) as a view
// of the same memory.
template <class Expression>
auto rows_view(const Expression& e) {
  using S = typename Expression::Scalar;
  static_assert(bool(Expression::IsRowMajor), "products take row-major operands");
  return ConstMatrixView<S>(e.data(), e.rows(), e.cols(), Eigen::OuterStride<>(e.outerStride()));
}

namespace detail {

template <class Expression>
struct Operand {
  static constexpr Orientation orientation = Orientation::as_stored;
  static auto view(const Expression& e) { return rows_view(e); }
};
template <class Nested>
struct Operand<Eigen::Transpose<Nested>> {
  static constexpr Orientation orientation = Orientation::transposed;
  static auto view(const Eigen::Transpose<Nested>& e) { return rows_view(e.nestedExpression()); }
};

}  // namespace detail

// dst = lhs·rhs (or dst += lhs·rhs with accumulate), for row-major views and their transposes.
template <class Dst, class Lhs, class Rhs>
void multiply(Dst&& dst, const Lhs& lhs, const Rhs& rhs, bool accumulate = false) {
  using S = typename std::decay_t<Dst>::Scalar;
  using LhsOperand = detail::Operand<Lhs>;
  using RhsOperand = detail::Operand<Rhs>;
  multiply_views<S, LhsOperand::orientation, RhsOperand::orientation>(
      MatrixView<S>(dst.data(), dst.rows(), dst.cols(), Eigen::OuterStride<>(dst.outerStride())),
      LhsOperand::view(lhs), RhsOperand::view(rhs), accumulate);
}

}  // namespace bptt::BPTT_ISA_NAMESPACE
