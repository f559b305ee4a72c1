// How the whole model computes its loss and gradients for a problem: the schedule, the chunks
// of steps its products work on, and, under a memory budget, which hidden states it keeps and
// which it computes again. The schedule and the chunks depend on the problem's size alone,
// never on the thread count or the budget: every product and every sum is then the same, in
// the same order, whatever the threads and the budget, and so are the results, to the bit.
#pragma once

#include "bptt/memory_budget.hpp"
#include "bptt/types.hpp"

#include <algorithm>
#include <cstddef>

namespace bptt {

enum class LossSchedule {
  // Chunks of consecutive steps: the input projection and the recurrence a chunk at a time
  // forward; then, a chunk at a time from the last, the head (logits, loss, dL/dh), the
  // backward recurrence, and the gradients' sums, which take the chunks in that order.
  chunked,
  // Problems too short for chunks (one short sequence): the head a step at a time behind the
  // forward recurrence, on a second thread when there is one (rnn_loss_pipeline.hpp).
  stepwise,
};

// Chunks of chunk_steps steps counted from the last step: the first chunk may be shorter.
struct LossChunks {
  Index steps, batch, chunk_steps, count;

  Index begin(Index chunk) const {
    return std::max<Index>(0, steps - (count - chunk) * chunk_steps);
  }
  Index end(Index chunk) const { return steps - (count - 1 - chunk) * chunk_steps; }
};

enum class Recomputation {
  none,      // every hidden state kept
  segments,  // the state before each segment of chunks kept; a segment's states computed again
  binomial,  // checkpoints at chunk boundaries chosen as Griewank's binomial schedule does
};

struct LossPlan {
  LossSchedule schedule;
  LossChunks chunks;
  bool small_steps;  // steps small enough that two threads pipeline the chunks (steps_pipeline)
  bool pipelined;    // two threads share the chunks' work (the schedule's results are the same)
  Recomputation recomputation;
  Index segment_chunks;    // segments: chunks a segment (counted from the last; the first may
                           // be shorter)
  Index checkpoint_slots;  // binomial: states kept besides the initial one
  std::size_t scratch_bytes;  // what the call allocates beyond its arguments and results
  Index stored_states;        // hidden states (of batch × hidden) held at once
  double recomputed_steps;    // steps computed again, as a fraction of the forward pass's
};

struct LossProblem {
  ProblemSize size;
  std::size_t scalar_bytes;
  bool tokens;
  bool lengths;  // per-sequence lengths
  int threads;   // free for the call
  ProductOperands operands = ProductOperands::native;
};

// The copies a call with bfloat16 operands rounds U, W and V into (kernels/bfloat16.hpp), in the
// order it takes them from its workspace.
std::size_t bfloat16_weight_bytes(const ProblemSize& size);

// The plan with the least recomputation whose scratch fits `budget` bytes (else
// MemoryBudgetTooSmall, bptt/memory_budget.hpp); with budget 0, the plan that keeps every state.
LossPlan plan_loss(const LossProblem& problem, std::size_t budget);

// The forward chunk computations that reversing `chunks` chunks takes with `slots` checkpoint
// slots besides the state before the first (each chunk's own computation included), and the
// number of chunks to advance before the first checkpoint that achieves it.
double binomial_cost(Index chunks, Index slots);
Index binomial_split(Index chunks, Index slots);

}  // namespace bptt
