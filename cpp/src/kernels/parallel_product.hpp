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
#pragma once

#include "team.hpp"
#include "matrix_views.hpp"

#include <algorithm>
#include <type_traits>

namespace bptt::BPTT_ISA_NAMESPACE {

// Multiples at which a product's result may be split across threads: of its rows (the kernel's
// columns) and of its columns (the kernel's rows).
template <class S>
constexpr Index kProductRowAlignment = Eigen::internal::gebp_traits<S, S>::nr;
template <class S>
constexpr Index kProductColumnAlignment = Eigen::internal::gebp_traits<S, S>::mr;

// dst = lhs·rhs (or dst += lhs·rhs with accumulate), dst and lhs split by rows alike.
template <class Dst, class Lhs, class Rhs>
void multiply(Dst&& dst, const Lhs& lhs, const Rhs& rhs, bool accumulate = false) {
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
    const auto [first, last] = row_share(rows, this_thread_index(), this_region_threads(),
                                         kProductRowAlignment<typename std::decay_t<Dst>::Scalar>);
    auto part = dst.middleRows(first, last - first);
    if (accumulate) part.noalias() += lhs.middleRows(first, last - first) * rhs;
    else part.noalias() = lhs.middleRows(first, last - first) * rhs;
  }
}

}  // namespace bptt::BPTT_ISA_NAMESPACE
