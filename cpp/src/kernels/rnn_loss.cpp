// The whole model (bptt/rnn_loss.hpp) as loss_plan.hpp plans it: the stepwise schedule, or the
// chunked one on two threads (rnn_loss_pipeline_*.cpp) or on one team, below, keeping every
// hidden state or, under a memory budget, some of them and computing the others again.
#include "bfloat16.hpp"
#include "chunked_loss.hpp"
#include "entry_points.hpp"
#include "rnn_loss_pipeline.hpp"
#include "scalars.hpp"

#include "../workspace.hpp"

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

using detail::ChunkedLoss;
using detail::GradientRows;
using detail::LossCall;

LossProblem loss_problem(const ProblemSize& size, std::size_t scalar_bytes, bool tokens,
                         bool lengths, ProductOperands operands) {
  return {size, scalar_bytes, tokens, lengths, free_threads(), operands};
}

template <class State>
State* take_states(Workspace& workspace, Index states, Index batch, Index hidden) {
  return workspace.take<State>(std::size_t(states * batch * hidden));
}

// The chunked schedule on one team of threads, which share each product. The backward sweep
// takes the chunks from the last, each one's head just before its backward recurrence, in a
// ring of two chunks of dL/dh and dL/da. States are stored as State (chunked_loss.hpp).
template <class S, class State>
class OneTeam {
 public:
  OneTeam(const LossCall<S>& call, const LossPlan& plan, Workspace& workspace)
      : call_(call),
        plan_(plan),
        B_(call.inputs.batch),
        H_(call.layer.hidden_size),
        ring_(workspace.take<S>(std::size_t(
            ring_steps(plan.chunks.count, plan.chunks.chunk_steps, 2) * B_ * H_))),
        logits_(workspace.take<S>(
            std::size_t(plan.chunks.chunk_steps * B_ * call.head.output_size))),
        loss_(call, plan.chunks,
              GradientRows<S>{ring_, H_, B_, TimeOrder{plan.chunks.steps, false},
                              plan.chunks.chunk_steps}) {}

  // Chunk j backward, its states in `states` (slots from first_slot on).
  void backward(Index j, const State* states, Index first_slot) {
    loss_.head(j, states, first_slot, logits_);
    loss_.backward(j, states, first_slot);
    loss_.sums(j, states, first_slot, logits_);
    loss_.rows_of_input_gradients(j);
  }

  // Every state kept, in `states`.
  double run_keeping_all(State* states, S* h_last) {
    const Index n = plan_.chunks.count, T = plan_.chunks.steps;
    loss_.initial_state(states);
    for (Index j = 0; j < n; ++j) loss_.forward(j, states, 0);
    loss_.state_out(states + T * B_ * H_, h_last);
    for (Index j = n - 1; j >= 0; --j) backward(j, states, 0);
    return loss_.finish();
  }

  // Segments of chunks: the state before each kept in `checkpoints`, the segment being taken
  // backward in `segment` (its slot 0 the state before its first step).
  double run_in_segments(State* checkpoints, State* segment, S* h_last) {
    const LossChunks& chunks = plan_.chunks;
    const Index n = chunks.count, L = plan_.segment_chunks, segments = (n + L - 1) / L;
    // Segment k holds the chunks [first_chunk(k), first_chunk(k + 1)); counted from the last.
    auto first_chunk = [&](Index k) { return std::max<Index>(0, n - (segments - k) * L); };
    auto compute_segment = [&](Index k) {
      const Index first_slot = chunks.begin(first_chunk(k));
      copy_state(checkpoints + k * B_ * H_, segment);
      for (Index j = first_chunk(k); j < first_chunk(k + 1); ++j)
        loss_.forward(j, segment, first_slot);
    };
    // One packing of W at a time: the forward loop's and the backward loop's take turns.
    loss_.release_backward_packing();
    loss_.initial_state(checkpoints);
    for (Index k = 0; k < segments; ++k) {
      compute_segment(k);
      const Index last_slot = chunks.end(first_chunk(k + 1) - 1);
      const State* last_state =
          segment + (last_slot - chunks.begin(first_chunk(k))) * B_ * H_;
      if (k + 1 < segments) copy_state(last_state, checkpoints + (k + 1) * B_ * H_);
      else loss_.state_out(last_state, h_last);
    }
    // The last segment's states are still in the buffer.
    for (Index k = segments - 1; k >= 0; --k) {
      if (k + 1 < segments) compute_segment(k);
      loss_.release_forward_packing();
      const Index first_slot = chunks.begin(first_chunk(k));
      for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j)
        backward(j, segment, first_slot);
      loss_.release_backward_packing();
    }
    return loss_.finish();
  }

  // Checkpoints at chunk boundaries in `slots` (the first the initial state, then
  // plan.checkpoint_slots more), chosen by the binomial schedule; `chunk_states` holds the
  // states of the chunk being advanced over or taken backward.
  double run_binomial(State* slots, State* chunk_states, S* h_last) {
    loss_.initial_state(slots);
    chunk_buffer_ = chunk_states;
    h_last_ = h_last;
    reverse(0, plan_.chunks.count, slots, plan_.checkpoint_slots, slots + B_ * H_);
    return loss_.finish();
  }

 private:
  void copy_state(const State* from, State* to) const { std::copy_n(from, B_ * H_, to); }

  // The states of chunk j, from `start` (the state before it), into the chunk buffer.
  void compute_chunk(Index j, const State* start) {
    copy_state(start, chunk_buffer_);
    loss_.forward(j, chunk_buffer_, plan_.chunks.begin(j));
  }
  const State* chunk_end_state(Index j) const {
    const LossChunks& chunks = plan_.chunks;
    return chunk_buffer_ + (chunks.end(j) - chunks.begin(j)) * B_ * H_;
  }

  // The chunks [first, last) backward, from `start` (the state before `first`), with `slots`
  // free checkpoint slots at `free`: advance by the binomial split, keep the state there,
  // reverse what follows with one slot fewer, then what precedes with the slot back.
  void reverse(Index first, Index last, const State* start, Index slots, State* free) {
    const Index n = last - first;
    if (n == 1) {
      compute_chunk(first, start);
      if (last == plan_.chunks.count) loss_.state_out(chunk_end_state(first), h_last_);
      backward(first, chunk_buffer_, plan_.chunks.begin(first));
      return;
    }
    if (slots == 0) {  // from `start` again for each chunk
      for (Index end = last; end > first; --end) reverse_from(first, end, start);
      return;
    }
    const Index advance = binomial_split(n, slots);
    const State* state = start;
    for (Index j = first; j < first + advance; ++j) {
      compute_chunk(j, state);
      state = chunk_end_state(j);
    }
    copy_state(state, free);
    reverse(first + advance, last, free, slots - 1, free + B_ * H_);
    reverse(first, first + advance, start, slots, free);
  }

  // The chunk end - 1 backward, advancing to it from `start` (the state before `first`); each
  // chunk starts from the last state of the one before, copied to the buffer's first slot.
  void reverse_from(Index first, Index end, const State* start) {
    const State* state = start;
    for (Index j = first; j + 1 < end; ++j) {
      compute_chunk(j, state);
      state = chunk_end_state(j);
    }
    reverse(end - 1, end, state, 0, nullptr);
  }

  const LossCall<S>& call_;
  const LossPlan& plan_;
  Index B_, H_;
  S* ring_;
  S* logits_;
  ChunkedLoss<S, State> loss_;
  State* chunk_buffer_ = nullptr;  // run_binomial's
  S* h_last_ = nullptr;
};

template <class S>
void run_done(const GradientsDone* done, double loss) {
  if (done) {
    on_threads(std::min(done->max_threads, free_threads()),
               [&](int thread, int threads) { done->run(thread, threads, loss); });
  }
}

// The chunked schedule as the plan has it, the hidden states stored as State (chunked_loss.hpp).
template <class S, class State>
double chunked_loss_and_grad(const LossCall<S>& call, const LossPlan& plan, Workspace& workspace,
                             S* h_last) {
  const Index T = plan.chunks.steps, B = plan.chunks.batch, H = call.layer.hidden_size;
  const Index O = call.head.output_size;
  const GradientsDone* const done = call.done;
  if (plan.pipelined && plan.recomputation == Recomputation::none) {
    State* const states = take_states<State>(workspace, T + 1, B, H);
    S* const d_logits = workspace.take<S>(std::size_t(T * B * O));
    S* const d_pre = workspace.take<S>(std::size_t(T * B * H));
    return detail::pipelined_loss_and_grad(call, plan.chunks, states, d_logits, d_pre, h_last);
  }
  double loss = 0.0;
  switch (plan.recomputation) {
    case Recomputation::none: {
      State* const states = take_states<State>(workspace, T + 1, B, H);
      loss = OneTeam<S, State>(call, plan, workspace).run_keeping_all(states, h_last);
      break;
    }
    case Recomputation::segments: {
      const Index segments = (plan.chunks.count + plan.segment_chunks - 1) / plan.segment_chunks;
      const Index segment_steps = plan.segment_chunks * plan.chunks.chunk_steps;
      State* const checkpoints = take_states<State>(workspace, segments, B, H);
      if (plan.pipelined) {
        State* buffers[2] = {take_states<State>(workspace, segment_steps + 1, B, H),
                             take_states<State>(workspace, segment_steps + 1, B, H)};
        const Index ring_rows =
            ring_steps(plan.chunks.count, plan.chunks.chunk_steps, kPipelineRingChunks) * B;
        S* const d_pre = workspace.take<S>(std::size_t(ring_rows * H));
        S* const d_logits = workspace.take<S>(std::size_t(ring_rows * O));
        return detail::pipelined_segments_loss_and_grad(call, plan, checkpoints, buffers, d_pre,
                                                        d_logits, h_last);
      }
      State* const segment = take_states<State>(workspace, segment_steps + 1, B, H);
      OneTeam<S, State> team(call, plan, workspace);
      loss = team.run_in_segments(checkpoints, segment, h_last);
      break;
    }
    case Recomputation::binomial: {
      State* const slots = take_states<State>(workspace, plan.checkpoint_slots + 1, B, H);
      State* const chunk_states =
          take_states<State>(workspace, plan.chunks.chunk_steps + 1, B, H);
      loss = OneTeam<S, State>(call, plan, workspace).run_binomial(slots, chunk_states, h_last);
      break;
    }
  }
  run_done<S>(done, loss);
  return loss;
}

}  // namespace

LossPlan loss_plan(const ProblemSize& size, std::size_t scalar_bytes, bool tokens, bool lengths,
                   ProductOperands operands, std::size_t budget) {
  return plan_loss(loss_problem(size, scalar_bytes, tokens, lengths, operands), budget);
}

// A sequence run backwards in time is the same sequence reversed run forwards: each sequence's
// steps [0, length) reversed into copies of the inputs and the targets, and dx back.
template <class S>
double reversed_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                              const SequenceInput<S>& inputs, const Targets<S>& targets,
                              const S* h0, Activation activation, Reduction reduction,
                              const LayerGradients<S>& layer_grads,
                              const HeadGradients<S>& head_grads, S* h_last,
                              const GradientsDone* done) {
  const Index T = inputs.steps, B = inputs.batch, D = layer.input_size, O = head.output_size;
  auto source = [&](Index t, Index b) {  // the time whose values go to time t of sequence b
    const Index length = inputs.lengths ? inputs.lengths[b] : T;
    return t < length ? length - 1 - t : t;
  };
  auto reorder = [&](auto* to, const auto* from, Index width) {
    for (Index t = 0; t < T; ++t)
      for (Index b = 0; b < B; ++b)
        std::copy_n(from + (source(t, b) * B + b) * width, width, to + (t * B + b) * width);
  };
  SequenceInput<S> forward = inputs;
  forward.reverse = false;
  std::vector<S> dense, d_inputs;
  std::vector<TokenId> tokens, ids;
  std::vector<S> soft;
  if (inputs.dense) {
    dense.resize(std::size_t(T * B * D));
    reorder(dense.data(), inputs.dense, D);
    forward.dense = dense.data();
  } else {
    tokens.resize(std::size_t(T * B));
    reorder(tokens.data(), inputs.tokens, 1);
    forward.tokens = tokens.data();
  }
  Targets<S> forward_targets;
  if (targets.ids) {
    ids.resize(std::size_t(T * B));
    reorder(ids.data(), targets.ids, 1);
    forward_targets.ids = ids.data();
  } else {
    soft.resize(std::size_t(T * B * O));
    reorder(soft.data(), targets.soft, O);
    forward_targets.soft = soft.data();
  }
  LayerGradients<S> grads = layer_grads;
  if (layer_grads.inputs) {
    d_inputs.resize(std::size_t(T * B * D));
    grads.inputs = d_inputs.data();
  }
  const double loss = rnn_loss_and_grad(layer, head, forward, forward_targets, h0, activation,
                                        reduction, grads, head_grads, h_last, done, 0);
  if (layer_grads.inputs) reorder(layer_grads.inputs, static_cast<const S*>(d_inputs.data()), D);
  return loss;
}

template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done, std::size_t memory_budget) {
  if (layer.operands != head.operands)
    throw std::invalid_argument("operands: the layer's and the head's must be the same");
  if (inputs.reverse) {
    if (memory_budget != 0)
      throw std::invalid_argument("memory_budget: not for sequences run backwards in time");
    return reversed_loss_and_grad(layer, head, inputs, targets, h0, activation, reduction,
                                  layer_grads, head_grads, h_last, done);
  }
  const ProblemSize size{inputs.steps, inputs.batch, layer.input_size, layer.hidden_size,
                         head.output_size};
  const Index T = size.steps, B = size.batch, H = size.hidden_size, O = size.output_size;
  if (T * B == 0) {  // no steps: L = 0, zero gradients, and h_last = h0
    detail::gradients_without_steps(layer, inputs, static_cast<const S*>(nullptr), layer_grads);
    matrix_view(head_grads.V, O, H, H).setZero();
    RowVectorView<S>(head_grads.c, O).setZero();
    MatrixView<S> last = matrix_view(h_last, B, H, H);
    if (h0) last = matrix_view(h0, B, H, H);
    else last.setZero();
    if (layer.operands == ProductOperands::bfloat16) round_to_bfloat16(last);
    run_done<S>(done, 0.0);
    return 0.0;
  }
  const LossPlan plan = loss_plan(size, sizeof(S), inputs.tokens != nullptr,
                                  inputs.lengths != nullptr, layer.operands, memory_budget);
  // Under a budget, the memory the call touches is the memory it takes.
  Workspace workspace(plan.scratch_bytes,
                      memory_budget ? Workspace::Pages::exact : Workspace::Pages::any);
  // bfloat16 operands: the products read rounded copies of the weights (bfloat16.hpp), in this
  // order, and of a chunk's dense inputs at a time (chunked_loss.hpp).
  const bool bfloat16 = layer.operands == ProductOperands::bfloat16;
  const LayerWeights<S> layer_operands = bfloat16 ? rounded_layer(layer, workspace) : layer;
  const HeadWeights<S> head_operands = bfloat16 ? rounded_head(head, workspace) : head;
  const LossCall<S> call{layer_operands, head_operands, inputs,      targets,    h0,
                         activation,     reduction,     layer_grads, head_grads, done};
  if (plan.schedule == LossSchedule::stepwise) {
    const Index N = T * B;
    const detail::LossScratch<S> scratch{take_states<S>(workspace, T + 1, B, H),
                                         workspace.take<S>(std::size_t(N * std::max(H, O))),
                                         workspace.take<S>(std::size_t(N * H))};
    const double loss = detail::stepwise_loss_and_grad(call, scratch);
    matrix_view(h_last, B, H, H) =
        matrix_view(static_cast<const S*>(scratch.states) + N * H, B, H, H);
    return loss;
  }
  if constexpr (std::is_same_v<S, float>) {
    if (bfloat16) return chunked_loss_and_grad<S, Bfloat16>(call, plan, workspace, h_last);
  }
  return chunked_loss_and_grad<S, S>(call, plan, workspace, h_last);
}

#define BPTT_INSTANTIATE(S)                                                                    \
  template double rnn_loss_and_grad<S>(                                                        \
      const LayerWeights<S>&, const HeadWeights<S>&, const SequenceInput<S>&, const Targets<S>&, \
      const S*, Activation, Reduction, const LayerGradients<S>&, const HeadGradients<S>&, S*,   \
      const GradientsDone*, std::size_t);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
