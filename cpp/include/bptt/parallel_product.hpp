// The whole-sequence products, split across the thread budget by rows of the result when they
// are large enough to pay for a fork and join, and run on one thread otherwise. Eigen's own
// OpenMP parallelism is switched off (threads.cpp): it forks even for products that take
// microseconds, which on a busy machine can cost milliseconds.
#pragma once

#include "bptt/threads.hpp"
#include "bptt/types.hpp"

#include <algorithm>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

// dst = lhs·rhs (or dst += lhs·rhs with accumulate). Each thread packs the whole of one operand
// and its share of the other: split by rows of dst (and lhs) when dst has at least as many rows
// as columns, by columns (and rhs) otherwise, so that the operand every thread packs whole is
// the smaller one (dV = dOᵀ·H, O × H, packs dO whole rather than the larger H).
template <class Dst, class Lhs, class Rhs>
void multiply(Dst&& dst, const Lhs& lhs, const Rhs& rhs, bool accumulate = false) {
  const Index rows = dst.rows(), cols = dst.cols();
  const double flops = 2.0 * double(rows) * double(cols) * double(lhs.cols());
  const bool by_columns = cols > rows;
  const int threads = product_threads(flops, by_columns ? cols : rows);
  if (threads <= 1) {
    if (accumulate) dst.noalias() += lhs * rhs;
    else dst.noalias() = lhs * rhs;
    return;
  }
#pragma omp parallel num_threads(threads)
  {
    const int thread = this_thread_index(), team = this_region_threads();
    if (by_columns) {
      const auto [first, last] = column_share(cols, thread, team);
      auto part = dst.middleCols(first, last - first);
      if (accumulate) part.noalias() += lhs * rhs.middleCols(first, last - first);
      else part.noalias() = lhs * rhs.middleCols(first, last - first);
    } else {
      const auto [first, last] = row_share(rows, thread, team);
      auto part = dst.middleRows(first, last - first);
      if (accumulate) part.noalias() += lhs.middleRows(first, last - first) * rhs;
      else part.noalias() = lhs.middleRows(first, last - first) * rhs;
    }
  }
}

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
