#include "loss_plan.hpp"

#include "chunks.hpp"
#include "thread_shares.hpp"
#include "workspace.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/training_step.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

namespace bptt {
namespace {

// Below this many rows (one short sequence) the pipeline's chunks would be too small for their
// products' fixed costs: such problems run stepwise.
constexpr Index kMinChunkedRows = 4 * kPipelineChunkRows;
// Eigen's matrix products take their operands' blocks in scratch of their own, of at most about
// this many rows of their inner dimension.
constexpr Index kProductBlockDepth = 320;

std::size_t scalars(std::size_t count, const LossProblem& problem) {
  return count * problem.scalar_bytes;
}

bool bfloat16_operands(const LossProblem& problem) {
  return problem.operands == ProductOperands::bfloat16;
}

// Bytes of a stored hidden state's value: a scalar, or bfloat16's 2 with bfloat16 operands.
std::size_t state_value_bytes(const LossProblem& problem) {
  return bfloat16_operands(problem) ? 2 : problem.scalar_bytes;
}

// The blocks into which stored bfloat16 states are converted, one for each of the chunked
// schedule's four pieces that read them (chunked_loss.hpp), of a chunk and its previous state.
constexpr Index kConvertedBlocks = 4;
// ... and into which a chunk's dense inputs are rounded, for its projection and for dU.
constexpr Index kRoundedInputBlocks = 2;

// How a way of running the chunked schedule holds its chunks: dL/da in a ring of ring_chunks
// chunks, the logits of logit_chunks chunks, W packed for `packings` step loops at once, and
// the blocks of Eigen's products on `threads` threads at once.
struct ChunkBuffers {
  Index ring_chunks, logit_chunks, packings, threads;
};
constexpr ChunkBuffers kOneTeamBuffers{2, 1, 2, 1};
// Segments on one team: the forward and backward loops take turns, one packing at a time.
constexpr ChunkBuffers kSegmentBuffers{2, 1, 1, 1};
// Segments on two threads: the heads worked out ahead of the backward loop, in rings.
constexpr ChunkBuffers kPipelinedSegmentBuffers{kPipelineRingChunks, kPipelineRingChunks, 2, 2};

// The scratch every plan of the chunked schedule takes besides the hidden states it holds: the
// ring of dL/da, the chunks' logits, the chunks' losses, dUᵀ for scattered token gradients,
// packed W, and the blocks of Eigen's largest product.
std::size_t chunk_buffers_bytes(const LossProblem& problem, const LossChunks& chunks,
                                const ChunkBuffers& buffers) {
  const ProblemSize& size = problem.size;
  const Index B = size.batch, H = size.hidden_size, O = size.output_size;
  const Index D = problem.tokens ? 0 : size.input_size;  // dense inputs' products
  const Index c = chunks.chunk_steps, rows = c * B;
  const auto ring = scalars(
      std::size_t(ring_steps(chunks.count, c, buffers.ring_chunks) * B * H), problem);
  const auto logits = scalars(
      std::size_t(ring_steps(chunks.count, c, buffers.logit_chunks) * B * O), problem);
  const bool scatters = problem.tokens && size.steps * B > size.input_size;
  const auto scatter = scalars(scatters ? std::size_t(size.input_size * H) : 0, problem);
  const auto packed =
      scalars(std::size_t(buffers.packings * H * (H + 16 + std::max<Index>(B, 8))), problem);
  // bfloat16 operands: a chunk's states converted, and its dense inputs rounded, by each piece
  const Index converted_values =
      kConvertedBlocks * (c + 1) * B * H + kRoundedInputBlocks * rows * D;
  const auto converted =
      bfloat16_operands(problem) ? scalars(std::size_t(converted_values), problem) : 0;
  // Each product (inner dimension k, result of m columns and n rows) takes blocks of at most
  // kProductBlockDepth·(m + n) scalars: the input projection, the logits, dL/dh, dV, dW, dU, dx.
  Index blocks = 0;
  const Index products[][3] = {{D, H, rows}, {H, O, rows}, {O, H, rows}, {rows, H, O},
                               {rows, H, H}, {rows, D, H}, {H, D, rows}};
  for (const auto& [k, m, n] : products)
    if (k > 0 && m > 0) blocks = std::max(blocks, std::min(k, kProductBlockDepth) * (m + n));
  return Workspace::bytes_for({ring, logits}) + std::size_t(chunks.count) * sizeof(double) +
         scatter + packed + converted + scalars(std::size_t(buffers.threads * blocks), problem);
}

// What every plan takes besides its schedule's buffers: the rounded copies of bfloat16 weights.
std::size_t operand_bytes(const LossProblem& problem) {
  if (!bfloat16_operands(problem)) return 0;
  return bfloat16_weight_bytes(problem.size);
}

std::size_t states_bytes(const LossProblem& problem, Index states) {
  const Index values = states * problem.size.batch * problem.size.hidden_size;
  return Workspace::bytes_for({std::size_t(values) * state_value_bytes(problem)});
}

// Refuses a problem whose byte counts could overflow 64 bits: its arrays (T·B rows of D, H or O
// scalars, a few of them at once; the weights and blocks of H rows as wide) could not exist in
// any address space.
void check_countable(const LossProblem& problem) {
  const ProblemSize& size = problem.size;
  const double widest =
      double(std::max({size.input_size, size.hidden_size, size.output_size})) + 16.0;
  // In doubles from the start: T + 1 itself overflows at the largest T.
  const double rows = (double(size.steps) + 1.0) * double(size.batch);
  const double bytes =
      std::max(rows, double(size.hidden_size) + 16.0) * widest * double(problem.scalar_bytes);
  constexpr double kCountable = 0x1p60;  // room for the several such terms a plan adds up
  if (bytes > kCountable) {
    throw AllocationTooLarge(
        "T=" + std::to_string(size.steps) + ", B=" + std::to_string(size.batch) +
        ", D=" + std::to_string(size.input_size) + ", H=" + std::to_string(size.hidden_size) +
        ", O=" + std::to_string(size.output_size) +
        ": expected a problem whose arrays fit in a 64-bit address space");
  }
}

LossPlan base_plan(const LossProblem& problem) {
  const ProblemSize& size = problem.size;
  const Index T = size.steps, B = size.batch, rows = T * B;
  LossPlan plan{};
  plan.small_steps = steps_pipeline(B, size.hidden_size);
  // (bfloat16 operands store their states as bfloat16 in the chunked schedule alone)
  const bool stepwise = step_stays_on_one_thread(B, size.hidden_size) && !problem.lengths &&
                        T >= 2 && rows < kMinChunkedRows &&
                        B > 0 && size.hidden_size > 0 && size.output_size > 0 &&
                        !bfloat16_operands(problem);
  plan.schedule = stepwise ? LossSchedule::stepwise : LossSchedule::chunked;
  const Index c = plan.small_steps
                      ? steps_per_chunk(kPipelineChunkRows, B, T / kMinPipelineChunks)
                      : steps_per_chunk(chunk_rows(size.hidden_size), B, T);
  plan.chunks = {T, B, c, chunk_count(T, c)};
  plan.recomputation = Recomputation::none;
  plan.stored_states = T + 1;
  return plan;
}

// Every state kept: on two threads, the pipeline keeps dO and dL/dh of every row; on one, a
// chunk's.
LossPlan full_plan(const LossProblem& problem, bool pipelined) {
  LossPlan plan = base_plan(problem);
  const ProblemSize& size = problem.size;
  const Index N = size.steps * size.batch, H = size.hidden_size, O = size.output_size;
  if (plan.schedule == LossSchedule::stepwise) {
    // The logits, then dO, in rows of max(H, O), and dL/dh then dL/da of every row.
    plan.pipelined = problem.threads >= 2;
    plan.scratch_bytes =
        Workspace::bytes_for({scalars(std::size_t((size.steps + 1) * size.batch * H), problem),
                              scalars(std::size_t(N * std::max(H, O)), problem),
                              scalars(std::size_t(N * H), problem)}) +
        std::size_t(size.steps) * sizeof(double) +
        scalars(std::size_t(4 * H * (std::max(H, O) + 16)), problem) +
        (problem.tokens && N > size.input_size
             ? scalars(std::size_t(size.input_size * H), problem)
             : 0);
    return plan;
  }
  plan.pipelined = pipelined;
  plan.scratch_bytes = states_bytes(problem, size.steps + 1) + operand_bytes(problem) +
                       chunk_buffers_bytes(problem, plan.chunks, kOneTeamBuffers) +
                       (pipelined ? Workspace::bytes_for({scalars(std::size_t(N * O), problem),
                                                          scalars(std::size_t(N * H), problem)})
                                  : 0);
  return plan;
}

// Segments of `segment_chunks` chunks: the state before each kept, and one segment's states;
// pipelined on two threads, two segments' (one taken backward while the next is computed).
LossPlan segments_plan(const LossProblem& problem, Index segment_chunks, bool pipelined) {
  LossPlan plan = base_plan(problem);
  const Index n = plan.chunks.count, segments = (n + segment_chunks - 1) / segment_chunks;
  const Index segment_steps = segment_chunks * plan.chunks.chunk_steps;
  const Index buffers = pipelined ? 2 : 1;
  plan.recomputation = Recomputation::segments;
  plan.pipelined = pipelined;
  plan.segment_chunks = segment_chunks;
  plan.stored_states = segments + buffers * (segment_steps + 1);
  plan.scratch_bytes =
      states_bytes(problem, segments) + buffers * states_bytes(problem, segment_steps + 1) +
      operand_bytes(problem) +
      chunk_buffers_bytes(problem, plan.chunks,
                          pipelined ? kPipelinedSegmentBuffers : kSegmentBuffers);
  // Every step before the last segment's is computed twice.
  const Index last_segment_begin = plan.chunks.begin(n - segment_chunks);
  plan.recomputed_steps = double(last_segment_begin) / double(problem.size.steps);
  return plan;
}

// Checkpoints at chunk boundaries in `slots` slots, chosen by the binomial schedule.
LossPlan binomial_plan(const LossProblem& problem, Index slots) {
  LossPlan plan = base_plan(problem);
  plan.recomputation = Recomputation::binomial;
  plan.checkpoint_slots = slots;
  plan.stored_states = slots + 1 + plan.chunks.chunk_steps + 1;
  plan.scratch_bytes = states_bytes(problem, slots + 1) +
                       states_bytes(problem, plan.chunks.chunk_steps + 1) +
                       operand_bytes(problem) +
                       chunk_buffers_bytes(problem, plan.chunks, kOneTeamBuffers);
  return plan;
}

// Segments take the least memory near √(n / chunk_steps) chunks a segment: the least is searched
// within this many of that.
constexpr Index kSegmentSearch = 2;

// The chunks a segment near which segments take the least memory.
Index least_segments(const LossProblem& problem, Index n) {
  const Index chunk_steps = base_plan(problem).chunks.chunk_steps;
  return std::clamp<Index>(Index(std::sqrt(double(n) / double(chunk_steps))), 1,
                           std::max<Index>(1, n - 1));
}

// The most chunks a segment that fits `budget` may have (0: none fits). The segments' memory, a
// checkpoint a segment and the states of one or two segments, is least near
// √(n / chunk_steps) chunks a segment and grows with longer ones: those are searched for the
// longest that fits.
Index longest_fitting_segments(const LossProblem& problem, Index n, std::size_t budget,
                               bool pipelined) {
  auto fits = [&](Index segment_chunks) {
    return segments_plan(problem, segment_chunks, pipelined).scratch_bytes <= budget;
  };
  const Index least = least_segments(problem, n);
  Index low = 0;
  for (Index segment_chunks = std::max<Index>(1, least - kSegmentSearch);
       segment_chunks <= std::min(n - 1, least + kSegmentSearch) && low == 0; ++segment_chunks) {
    if (fits(segment_chunks)) low = segment_chunks;
  }
  if (low == 0) return 0;
  Index high = n - 1;  // fits(low); the longest that fits in [low, high]
  while (low < high) {
    const Index middle = low + (high - low + 1) / 2;
    if (fits(middle)) low = middle;
    else high = middle - 1;
  }
  return low;
}

// Griewank's binomial schedule in closed form. beta(s, r) = C(s + r, s) steps can be reversed
// with s checkpoints and each step computed at most r times; reversing l steps with s
// checkpoints takes t(l, s) = r·l − beta(s + 1, r − 1) forward steps, r the least with
// beta(s, r) ≥ l (Griewank, "Achieving logarithmic growth of temporal and spatial complexity in
// reverse automatic differentiation", 1992). Reversing n chunks with `slots` slots besides the
// state before the first, each chunk computed once more as it is taken backward, is then
// t(n, slots + 1) + n chunk computations (the recurrence's minimum, checked against it).
double beta(Index s, Index r) {
  constexpr double kHuge = 1e300;
  const Index k = std::min(s, r), n = s + r;
  double value = 1.0;  // C(n, i), exact in a double while below 2^53
  for (Index i = 1; i <= k; ++i) {
    value = value * double(n - i + 1) / double(i);
    if (value > kHuge) return kHuge;
  }
  return value;
}

// The least r with beta(s, r) ≥ steps.
Index repetitions(Index steps, Index s) {
  Index low = 0, high = std::max<Index>(0, steps);
  while (low < high) {
    const Index middle = low + (high - low) / 2;
    if (beta(s, middle) >= double(steps)) high = middle;
    else low = middle + 1;
  }
  return low;
}

double forward_steps(Index steps, Index s) {
  if (steps <= 1) return 0.0;
  const Index r = repetitions(steps, s);
  return double(r) * double(steps) - beta(s + 1, r - 1);
}

}  // namespace

MemoryBudgetTooSmall::MemoryBudgetTooSmall(std::size_t budget, std::size_t minimum_bytes)
    : std::invalid_argument("memory_budget: expected at least " + std::to_string(minimum_bytes) +
                            " bytes (the smallest schedule's need for this problem), got " +
                            std::to_string(budget)),
      minimum(minimum_bytes) {}

std::size_t bfloat16_weight_bytes(const ProblemSize& size) {
  const Index D = size.input_size, H = size.hidden_size, O = size.output_size;
  return Workspace::bytes_for({std::size_t(H * D) * sizeof(float),
                               std::size_t(H * H) * sizeof(float),
                               std::size_t(O * H) * sizeof(float)});
}

double binomial_cost(Index chunks, Index slots) {
  if (chunks <= 0) return 0.0;
  return forward_steps(chunks, slots + 1) + double(chunks);
}

Index binomial_split(Index chunks, Index slots) {
  if (slots >= chunks - 1) return 1;
  // m + cost(n − m, s − 1) + cost(m, s) is convex in m: the first m where it stops decreasing.
  auto total = [&](Index advance) {
    return double(advance) + binomial_cost(chunks - advance, slots - 1) +
           binomial_cost(advance, slots);
  };
  Index low = 1, high = chunks - 1;
  while (low < high) {
    const Index middle = low + (high - low) / 2;
    if (total(middle + 1) < total(middle)) low = middle + 1;
    else high = middle;
  }
  return low;
}

LossPlan plan_loss(const LossProblem& problem, std::size_t budget) {
  if (problem.size.steps == 0 || problem.size.batch == 0) {  // nothing to compute, nor to keep
    LossPlan plan = base_plan(problem);
    plan.chunks.count = 0;
    plan.stored_states = 1;
    return plan;
  }
  check_countable(problem);
  const bool can_pipeline = problem.threads >= 2 && base_plan(problem).small_steps;
  const LossPlan pipelined = full_plan(problem, can_pipeline);
  if (budget == 0 || pipelined.scratch_bytes <= budget) return pipelined;
  const LossPlan full = full_plan(problem, false);
  if (full.scratch_bytes <= budget) return full;
  if (full.schedule == LossSchedule::stepwise) throw MemoryBudgetTooSmall(budget, full.scratch_bytes);
  const Index n = full.chunks.count;
  // The longest segments that fit: the fewest steps computed twice; pipelined on two threads
  // where the steps are small, if that fits.
  for (const bool pipelined : {true, false}) {
    if (pipelined && !can_pipeline) continue;
    if (const Index segment_chunks = longest_fitting_segments(problem, n, budget, pipelined))
      return segments_plan(problem, segment_chunks, pipelined);
  }
  const LossPlan none_kept = binomial_plan(problem, 0);
  if (none_kept.scratch_bytes > budget) {
    // The least any plan takes: every state kept (a problem of one chunk), no checkpoint but
    // the first, or the segments searched above.
    std::size_t least = std::min(none_kept.scratch_bytes, full.scratch_bytes);
    const Index middle = least_segments(problem, n);
    for (Index chunks = std::max<Index>(1, middle - kSegmentSearch);
         chunks <= std::min(n - 1, middle + kSegmentSearch); ++chunks)
      least = std::min(least, segments_plan(problem, chunks, false).scratch_bytes);
    throw MemoryBudgetTooSmall(budget, least);
  }
  const std::size_t slot_bytes = states_bytes(problem, 1);
  Index slots = Index((budget - none_kept.scratch_bytes) / slot_bytes);
  slots = std::min(slots, std::max<Index>(0, n - 1));
  while (slots > 0 && binomial_plan(problem, slots).scratch_bytes > budget) --slots;
  LossPlan plan = binomial_plan(problem, slots);
  plan.recomputed_steps = (binomial_cost(n, slots) - double(n)) / double(n);
  return plan;
}

std::size_t rnn_loss_working_bytes(const ProblemSize& size, std::size_t scalar_bytes, bool tokens,
                                   std::size_t memory_budget, ProductOperands operands) {
  const LossProblem problem{size, scalar_bytes, tokens, false, free_threads(), operands};
  return plan_loss(problem, memory_budget).scratch_bytes;
}

std::size_t training_step_working_bytes(const ParameterLayout& layout, Index steps, Index batch,
                                        std::size_t scalar_bytes, std::size_t memory_budget,
                                        ProductOperands operands) {
  const Index H = layout.hidden_size, O = layout.output_size;
  if (layout.layers == 1) {
    const ProblemSize size{steps, batch, layout.input_size, H, O};
    return rnn_loss_working_bytes(size, scalar_bytes, true, memory_budget, operands);
  }
  // stack_loss.cpp's buffers, and the head's logits beside them
  const std::size_t states = std::size_t((layout.layers * (steps + 1) + 2 * steps + 1) * batch * H);
  return (states + std::size_t(steps * batch * O)) * scalar_bytes;
}

LossMemoryPlan rnn_loss_memory_plan(const ProblemSize& size, std::size_t scalar_bytes,
                                    bool tokens, std::size_t memory_budget,
                                    ProductOperands operands) {
  // No steps or no sequences: the call computes nothing and keeps nothing.
  if (size.steps == 0 || size.batch == 0) return {0, "every state kept", 0, 0, 0.0, 0};
  const LossProblem problem{size, scalar_bytes, tokens, false, free_threads(), operands};
  const LossPlan plan = plan_loss(problem, memory_budget);
  LossMemoryPlan summary{plan.scratch_bytes, "every state kept", plan.stored_states,
                         0, plan.recomputed_steps, plan.scratch_bytes};
  try {
    plan_loss(problem, 1);
  } catch (const MemoryBudgetTooSmall& smallest) {
    summary.minimum_bytes = smallest.minimum;
  }
  switch (plan.recomputation) {
    case Recomputation::none:
      break;
    case Recomputation::segments:
      summary.schedule = "segments";
      summary.checkpoints = (plan.chunks.count + plan.segment_chunks - 1) / plan.segment_chunks;
      break;
    case Recomputation::binomial:
      summary.schedule = "binomial";
      summary.checkpoints = plan.checkpoint_slots + 1;
      break;
  }
  return summary;
}

}  // namespace bptt
