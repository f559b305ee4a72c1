// The thread budget of the core: Eigen's whole-sequence products and the split per-step products
// both draw from it.
#pragma once

#include "bptt/types.hpp"

#include <utility>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

// More threads than this is never useful on one machine, and asking OpenMP for tens of
// thousands can fail inside the runtime, which cannot report it.
constexpr int kMaxThreads = 1024;

void set_num_threads(int threads);  // clamped to [1, kMaxThreads]
int get_num_threads();

// The threads a product may fork: the budget, or 1 inside a region that already runs on threads
// of its own (a thread of the loss pipeline).
int free_threads();

// How many threads one per-step product (batch × hidden)·(hidden × hidden) is worth: splitting
// costs a barrier per step, so small steps stay on one thread.
int recurrence_threads(Index batch, Index hidden);

// How many threads a whole-sequence product of `flops` with `rows` result rows is worth.
int product_threads(double flops, Index rows);

// The columns [first, second) of a row of `width` that thread `thread` of `threads` owns, cut at
// multiples of the SIMD width so that no vector straddles two threads.
std::pair<Index, Index> column_share(Index width, int thread, int threads);

// The rows [first, second) of `rows` that thread `thread` of `threads` owns.
std::pair<Index, Index> row_share(Index rows, int thread, int threads);

int this_thread_index();   // inside a parallel region; 0 outside
int this_region_threads();  // inside a parallel region; 1 outside

// Runs body(thread, threads) on `threads` threads, or directly on the calling thread for one:
// libgomp's barrier makes a futex system call even in a team of one, which at small sizes costs
// as much as a step's arithmetic.
template <class Body>
void on_threads(int threads, Body&& body) {
  if (threads <= 1) {
    body(0, 1);
    return;
  }
#pragma omp parallel num_threads(threads)
  body(this_thread_index(), this_region_threads());
}

// Waits until every thread of the team has arrived; a team of one does not wait.
inline void team_barrier(int threads) {
  if (threads > 1) {
#pragma omp barrier
  }
}

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
