// The whole model on two threads when a step's product is too small to split across threads (a
// barrier per step would cost more than it saves):
// - the pipeline: one thread runs the recurrences step after step; the other follows it, a chunk
//   of steps at a time, with the work that needs only the steps already done: logits, loss and
//   dL/dh behind the forward recurrence, the parameter gradients behind the backward one. The
//   inputs' projection and dU's terms go to whichever thread is free for them first (the other
//   projects a chunk ahead of the recurrence; the recurrence's thread takes the terms of dU the
//   other falls behind on), and the recurrence's thread computes dx after. It runs the chunked
//   schedule's pieces (chunked_loss.hpp), the same as on one thread;
// - stepwise, for problems too short for chunks: the other thread follows the forward
//   recurrence step by step for the logits and the loss, then computes dL/dh a few steps at a
//   time, from the last, for the backward recurrence to start on at once, then dV, dc and dU;
//   the recurrence's thread takes dW, dx and dh0 after its loop.
// Either way the first thread alone reads W and b, and the second V and c.
#pragma once

#include "handoff.hpp"
#include "matrix_views.hpp"
#include "scalars.hpp"

#include "../loss_plan.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

// One call of the whole model: what it reads, and what it writes besides the scratch.
template <class S>
struct LossCall {
  const LayerWeights<S>& layer;
  const HeadWeights<S>& head;
  const SequenceInput<S>& inputs;
  const Targets<S>& targets;
  const S* h0;  // null: the zero initial state
  Activation activation;
  Reduction reduction;
  const LayerGradients<S>& layer_grads;
  const HeadGradients<S>& head_grads;
  const GradientsDone* done;  // may be null
};

// The scratch of one call (rnn_loss.cpp sizes it for its schedule):
template <class S>
struct LossScratch {
  S* states;       // (steps + 1)·batch·hidden: h0 in slot 0 and h_t in slot t + 1
  S* logit_rows;   // a row per (t, b): its logits, then dL/do in place
  S* hidden_rows;  // rows of dL/dh, then of da, as the schedule uses them
};

// The scalar and stored-state types the chunked schedules are compiled for: with bfloat16
// operands, the states are stored as bfloat16.
#define BPTT_FOR_EACH_SCALAR_AND_STATE(X) \
  X(float, float) BPTT_IF_FLOAT64(X(double, double)) X(float, Bfloat16)

// The stepwise schedule (loss_plan.hpp) on scratch whose logit_rows have max(hidden, output)
// scalars each and whose hidden_rows hold every row: leaves the hidden states in the scratch's
// states, runs the call's `done` on its team of threads and returns L.
template <class S>
double stepwise_loss_and_grad(const LossCall<S>& call, const LossScratch<S>& scratch);

// The chunked schedule on two threads, every state kept: `states` holds every slot (stored as
// State, chunked_loss.hpp), `d_logits` (output_size a row) and `d_pre` (hidden_size a row) every
// row. Runs the call's `done` on its team and returns L.
template <class S, class State>
double pipelined_loss_and_grad(const LossCall<S>& call, const LossChunks& chunks, State* states,
                               S* d_logits, S* d_pre, S* h_last);

// The chunked schedule on two threads under a memory budget (loss_plan.hpp's pipelined
// segments): `checkpoints` for the state before each segment, two segment buffers of
// segment_chunks·chunk_steps + 1 slots, and rings of kPipelineRingChunks chunks of dL/dh
// (hidden_size a row) and of logits (output_size a row). Runs the call's `done` on its team and
// returns L.
template <class S, class State>
double pipelined_segments_loss_and_grad(const LossCall<S>& call, const LossPlan& plan,
                                        State* checkpoints, State* segment_buffers[2],
                                        S* d_pre_ring, S* d_logits_ring, S* h_last);

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
