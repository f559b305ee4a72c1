// Running a piece of work on a team of threads (OpenMP), for the kernels.
#pragma once

#include "../thread_shares.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

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

}  // namespace bptt::BPTT_ISA_NAMESPACE
