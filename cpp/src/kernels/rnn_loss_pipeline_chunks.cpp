// The loss in chunks on two threads, every state kept (rnn_loss_pipeline.hpp).
#include "rnn_loss_pipeline.hpp"

#include "chunked_loss.hpp"
#include "recurrence.hpp"

#include <algorithm>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

template <class S, class State>
double pipelined_loss_and_grad(const LossCall<S>& call, const LossChunks& chunks, State* states,
                               S* d_logits, S* d_pre, S* h_last) {
  const Index T = call.inputs.steps, B = call.inputs.batch, H = call.layer.hidden_size;
  const Index O = call.head.output_size, n = chunks.count;
  ChunkedLoss<S, State> loss(call, chunks, GradientRows<S>{d_pre, H, B, TimeOrder{T, false}});
  loss.initial_state(states);
  StepCounter forward_done, head_done, backward_done;
  // The chunks' projections (b + U x, in chunk order) and their terms of dU (item k: chunk
  // n - 1 - k), each taken by whichever thread claims it first: the other thread projects the
  // next chunk while the recurrence runs this one, and the recurrence's thread takes the terms
  // of dU the other has fallen behind on. Either way the same sums in the same order.
  OrderedClaims projections, input_sums;
  const bool projects_apart = loss.projects_apart();
  auto project = [&](Index j) {
    loss.project(j, states, 0);
    projections.finish(j);
  };
  auto take_input_sums = [&](Index items) {  // the next of the first `items` while free
    for (Index k = input_sums.finished(); k < items && input_sums.try_claim(k);
         k = input_sums.finished()) {
      loss.input_sums(n - 1 - k);
      input_sums.finish(k);
    }
  };
  // The recurrences' thread: the chunks forward, then backward from the last, once the other
  // has computed dL/dh of every chunk; then dx and dh0, which the other thread would wait for.
  auto run_forward = [&] {
    for (Index j = 0; j < n; ++j) {
      auto progress = [&](Index done) { forward_done.publish(done); };
      if (!projects_apart) {
        loss.forward(j, states, 0, progress);
        continue;
      }
      if (projections.try_claim(j)) project(j);
      else projections.wait_finished(j + 1);
      loss.recur(j, states, 0, progress);
    }
  };
  auto run_backward = [&] {
    head_done.wait_for(n);
    for (Index j = n - 1; j >= 0; --j) {
      loss.backward(j, states, 0);
      backward_done.publish(n - j);
      take_input_sums(n - 1 - j);  // chunks after this one the other has not started on
    }
    for (Index j = n - 1; j >= 0; --j) loss.rows_of_input_gradients(j);
    take_input_sums(n);
  };
  // The other thread: each chunk's head as soon as its states are done (projecting the next
  // chunk while they run), then each chunk's sums as soon as its dL/da is.
  auto follow_forward = [&] {
    for (Index j = 0; j < n; ++j) {
      if (projects_apart && j + 1 < n && forward_done.done() < chunks.end(j) &&
          projections.try_claim(j + 1))
        project(j + 1);
      forward_done.wait_for(chunks.end(j));
      loss.head(j, states, 0, d_logits + chunks.begin(j) * B * O);
      head_done.publish(j + 1);
    }
  };
  auto follow_backward = [&] {
    for (Index j = n - 1; j >= 0; --j) {
      backward_done.wait_for(n - j);
      take_input_sums(n - j);
      loss.head_sums(j, states, 0, d_logits + chunks.begin(j) * B * O);
      loss.recurrent_sums(j, states, 0);
    }
    take_input_sums(n);
  };
  double total = 0.0;
  on_threads(std::min(2, free_threads()), [&](int thread, int threads) {
    if (threads == 1) {  // no second thread to be had: the same work, one part after another
      run_forward();
      follow_forward();
      run_backward();
      follow_backward();
    } else if (thread == 0) {
      run_forward();
      run_backward();
    } else if (thread == 1) {
      follow_forward();
      follow_backward();
    }
    input_sums.wait_finished(n);
    team_barrier(threads);
    if (thread == 0) total = loss.finish();
    team_barrier(threads);
    if (call.done) call.done->run(thread, threads, total);
  });
  loss.state_out(states + T * B * H, h_last);
  return total;
}

#define BPTT_INSTANTIATE(S, State)                                                         \
  template double pipelined_loss_and_grad<S, State>(const LossCall<S>&, const LossChunks&, \
                                                    State*, S*, S*, S*);
BPTT_FOR_EACH_SCALAR_AND_STATE(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
