// The whole model under a bound on its working memory (bptt/rnn_loss.hpp).
#pragma once

#include "bptt/types.hpp"

#include <cstddef>
#include <stdexcept>
#include <string>

namespace bptt {

// What a call of rnn_loss_and_grad does with its working memory: everything it allocates
// beyond its arguments and its results. With every hidden state kept, the states, the logits
// and gradients of a chunk of steps (of every step, on two threads) and the packed weights.
// Under a memory budget too small for that, the call keeps the state before each segment of
// steps and computes a segment's states again as the backward pass reaches it, or, for tighter
// budgets, keeps states at the boundaries Griewank's binomial schedule chooses. Its results are
// the same bits either way: the products and the sums are the same, in the same order.
struct LossMemoryPlan {
  std::size_t bytes;        // the working memory the call allocates at most
  std::string schedule;     // "every state kept", "segments" or "binomial"
  Index stored_states;      // hidden states (batch × hidden each) held at once
  Index checkpoints;        // of those, the states kept to compute others again from
  double recomputed_steps;  // steps computed twice or more, as a fraction of the forward pass
  std::size_t minimum_bytes;  // the smallest budget any plan fits in
};

// The plan of a call of rnn_loss_and_grad on this thread, with the current thread count
// (bptt/threads.hpp), within memory_budget bytes (0: none), for weights of `operands`. Throws
// MemoryBudgetTooSmall for a budget below the smallest plan's need.
LossMemoryPlan rnn_loss_memory_plan(const ProblemSize& size, std::size_t scalar_bytes,
                                    bool tokens, std::size_t memory_budget,
                                    ProductOperands operands = ProductOperands::native);

// The working memory of that plan alone (LossMemoryPlan::bytes), without searching for the
// minimum: what a call checks before it runs. Throws MemoryBudgetTooSmall as above.
std::size_t rnn_loss_working_bytes(const ProblemSize& size, std::size_t scalar_bytes, bool tokens,
                                   std::size_t memory_budget,
                                   ProductOperands operands = ProductOperands::native);

// Thrown for a memory budget below the smallest plan's need.
class MemoryBudgetTooSmall : public std::invalid_argument {
 public:
  MemoryBudgetTooSmall(std::size_t budget, std::size_t minimum);
  std::size_t minimum;  // bytes
};

}  // namespace bptt
