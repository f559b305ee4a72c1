// How the core divides its work among the threads of the budget (bptt/threads.hpp): how many
// threads a product or a step loop is worth, and which rows or columns each thread owns.
#pragma once

#include "bptt/threads.hpp"
#include "bptt/types.hpp"

#include <cstddef>
#include <string>
#include <utility>

namespace bptt {

// The threads a product may fork: the budget, or 1 inside a region that already runs on threads
// of its own (a thread of the loss pipeline).
int free_threads();

// Whether one per-step product (batch × hidden)·(hidden × hidden) is too small to split: a split
// costs a barrier per step. A property of the problem's size alone.
bool step_stays_on_one_thread(Index batch, Index hidden);

// Whether two threads take a recurrence as a pipeline, where they can (two chunks of steps at
// least): one runs the steps whole, the other follows with the work that needs only the steps
// done, rather than both sharing each step. A property of the problem's size alone, which sizes
// the chunks (chunks.hpp), so that every thread count gives the same bits.
bool steps_pipeline(Index batch, Index hidden);

// How a team shares the per-step products of a recurrence.
struct StepShares {
  int threads = 1;  // 1 for a step that stays on one thread
  // Each thread its own sequences of the batch (rows of every step), which the recurrence
  // never mixes: the threads need not wait for each other between steps. Otherwise each thread
  // its own columns of every step, whose next step reads all of them: a barrier after each.
  bool by_rows = false;
};
StepShares recurrence_shares(Index batch, Index hidden, std::size_t scalar_bytes);

// How the steps of a recurrence are shared here, in words (for bptt.build_info()).
std::string step_shares_rule();

// How many threads a whole-sequence product of `flops` with `rows` result rows is worth.
int product_threads(double flops, Index rows);

// The columns [first, second) of a row of `width` that thread `thread` of `threads` owns, cut at
// multiples of `alignment` (at least the SIMD width, so that no vector straddles two threads;
// the products' kernels ask for the multiple of their register blocks that keeps each value's
// sum in the same order as on one thread).
std::pair<Index, Index> column_share(Index width, int thread, int threads, Index alignment);

// The rows [first, second) of `rows` that thread `thread` of `threads` owns, cut at multiples of
// `alignment`.
std::pair<Index, Index> row_share(Index rows, int thread, int threads, Index alignment);

int this_thread_index();    // inside a parallel region; 0 outside
int this_region_threads();  // inside a parallel region; 1 outside

}  // namespace bptt
