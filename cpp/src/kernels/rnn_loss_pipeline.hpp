// The whole model on two threads when a step's product is too small to split across threads (a
// barrier per step would cost more than it saves):
// - the pipeline: one thread runs the recurrences step after step; the other follows it, a chunk
//   of steps at a time, with the work that needs only the steps already done: logits, loss and
//   dL/dh behind the forward recurrence, the parameter gradients behind the backward one; the
//   recurrence's thread projects the inputs just ahead of itself and computes dx after. The
//   chunks depend on the problem's size alone, so results do not depend on how the two threads
//   happen to interleave;
// - stepwise, for problems too short for chunks: the other thread follows the forward
//   recurrence step by step for the logits and the loss, then computes dL/dh a few steps at a
//   time, from the last, for the backward recurrence to start on at once, then dV, dc and dU;
//   the recurrence's thread takes dW, dx and dh0 after its loop.
// Either way the first thread alone reads W, U and b, and the second V and c.
#pragma once

#include "matrix_views.hpp"

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

enum class TwoThreadSchedule { none, pipeline, stepwise };

// none unless there are two free threads, steps that stay on one thread and full-length
// sequences forward in time; then the pipeline if there are steps and rows (steps·batch) enough
// for several chunks, stepwise if the rows are few, and none for a few steps of a wide batch.
TwoThreadSchedule two_thread_schedule(const ProblemSize& size, bool has_lengths, bool reverse);

// The steps per chunk of the pipeline.
Index pipeline_chunk_steps(Index steps, Index batch);

// The rows (of hidden_size scalars) of hidden_rows that a schedule takes.
Index schedule_hidden_rows(TwoThreadSchedule schedule, const ProblemSize& size);

// rnn_loss_and_grad on two threads, on scratch whose logit_rows have max(hidden, output)
// scalars each and hidden_rows schedule_hidden_rows of them: leaves the hidden states in the
// scratch's states, runs the call's `done` on its team of threads and returns L.
template <class S>
double stepwise_loss_and_grad(const LossCall<S>& call, const LossScratch<S>& scratch);

template <class S>
double pipelined_loss_and_grad(const LossCall<S>& call, const LossScratch<S>& scratch);

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
