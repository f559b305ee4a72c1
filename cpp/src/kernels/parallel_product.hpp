// The whole-sequence products, split across the thread budget by rows of the result when they
// are large enough to pay for a fork and join, and run on one thread otherwise. Eigen's own
// OpenMP parallelism is switched off (threads.cpp): it forks even for products that take
// microseconds, which on a busy machine can cost milliseconds.
#pragma once

#include "team.hpp"
#include "matrix_views.hpp"

#include <algorithm>

namespace bptt::BPTT_ISA_NAMESPACE {

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
    const auto [first, last] = row_share(rows, this_thread_index(), this_region_threads());
    auto part = dst.middleRows(first, last - first);
    if (accumulate) part.noalias() += lhs.middleRows(first, last - first) * rhs;
    else part.noalias() = lhs.middleRows(first, last - first) * rhs;
  }
}

}  // namespace bptt::BPTT_ISA_NAMESPACE
