#include "rnn_loss_pipeline.hpp"

#include "chunked_loss.hpp"
#include "recurrence.hpp"
#include "softmax_head.hpp"

#include <algorithm>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

// The stepwise schedule's chunks of dL/dh: about this many rows, few enough that the backward
// loop, which waits for the first of them, starts soon after the forward recurrence ends.
constexpr Index kUpstreamRows = 4;

// dx and dh0 from the pre-activation gradients of all steps (the schedules run forward in time,
// without lengths: dh0 is Wᵀ da of the first step).
template <class S>
void input_and_initial_state_gradients(const LayerWeights<S>& layer,
                                       const LayerGradients<S>& layer_grads,
                                       ConstMatrixView<S> da, Index batch) {
  const Index H = layer.hidden_size;
  input_gradient_rows(layer, layer_grads, 0, da);
  matrix_view(layer_grads.h0, batch, H, H).noalias() =
      da.topRows(batch) * matrix_view(layer.W, H, H, H);
}

// L from the losses of the schedule's parts (chunks or steps), summed in their order.
double total_loss(const std::vector<double>& part_losses, const LossReduction& reduced) {
  double loss = 0.0;
  for (const double part_loss : part_losses) loss += part_loss;
  return reduced.loss(loss);
}

// The caller's work on the finished gradients and loss, on this team (rnn_loss.hpp).
void when_gradients_done(const GradientsDone* done, int thread, int threads,
                         const std::vector<double>& part_losses, const LossReduction& reduced) {
  if (!done) return;
  team_barrier(threads);
  done->run(thread, threads, total_loss(part_losses, reduced));
}

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

template <class S>
double stepwise_loss_and_grad(const LossCall<S>& call, const LossScratch<S>& scratch) {
  const LayerWeights<S>& layer = call.layer;
  const HeadWeights<S>& head = call.head;
  const SequenceInput<S>& inputs = call.inputs;
  const Targets<S>& targets = call.targets;
  const Activation activation = call.activation;
  const LayerGradients<S>& layer_grads = call.layer_grads;
  const HeadGradients<S>& head_grads = call.head_grads;
  S* const states = scratch.states;
  S* const logit_rows = scratch.logit_rows;
  S* const hidden_rows = scratch.hidden_rows;
  const Index T = inputs.steps, B = inputs.batch, H = layer.hidden_size;
  const Index O = head.output_size, N = T * B, width = std::max(H, O);
  const LossReduction reduced{call.reduction, counted_targets(targets, N)};
  const S scale = reduced.gradient_scale<S>();
  std::vector<double> step_losses(size_t(T), 0.0);
  const S* hidden = states + B * H;
  const ConstMatrixView<S> hidden_states = matrix_view(hidden, N, H, H);
  const ConstMatrixView<S> previous = matrix_view(static_cast<const S*>(states), N, H, H);
  // logit_rows: each step's logits, then dL/do in place; hidden_rows: dL/dh_t = Vᵀ dO_t, then
  // da in place.
  const ConstMatrixView<S> d_logits = matrix_view(static_cast<const S*>(logit_rows), N, O, width);
  const ConstMatrixView<S> da = matrix_view(static_cast<const S*>(hidden_rows), N, H, H);
  const ConstRowVectorView<S> c(head.c, O);

  InputGradientSum<S> input_side(layer, inputs, layer_grads);
  StepCounter forward_done, upstream_done, backward_done;
  // dL/dh is computed in chunks of a few steps, from the last, each as soon as the logits are
  // done, and the backward loop runs each chunk as soon as its dL/dh is.
  const Index upstream_steps = std::min(T, (kUpstreamRows + B - 1) / B);
  auto run_forward = [&] {
    prepare_states(layer, inputs, call.h0, states, T);
    forward_recurrence(layer, inputs, activation, states,
                       [&](Index done) { forward_done.publish(done); });
  };
  // The head, on the second thread: the logits and loss of each step, two steps behind the
  // forward recurrence (whose next state shares a cache line with this one's last values, and
  // which a closer follower slows, polling its progress); then dL/dh = Vᵀ dO a chunk at a time,
  // and dV and dc. V is packed once for each product, where a product per step or chunk would
  // pack it every time; the product for dL/dh is left out of the step loop, where the two would
  // not fit in the L1 cache. V is read on this thread alone and W on the other: each thread's
  // cache keeps the weights it reads, and the gradients it writes, for an update of the
  // parameters after the call (rnn_loss.hpp's GradientsDone).
  auto follow_forward = [&] {
    StepProduct<S> logits_product(head.V, H, WeightUse::transposed, 0, O, B, H, T);
    StepProduct<S> upstream_product(head.V, H, WeightUse::as_is, 0, H, upstream_steps * B, O,
                                    T / upstream_steps + 1);
    for (Index t = 0; t < T; ++t) {
      forward_done.wait_for(std::min(T, t + 3));
      const Index first = t * B;
      MatrixView<S> logits = matrix_view(logit_rows + first * width, B, O, width);
      logits.rowwise() = c;
      logits_product.accumulate(hidden + first * H, H, logits.data(), width);
      step_losses[size_t(t)] =
          softmax_cross_entropy_rows(logits, targets_from(targets, first, O), scale);
    }
    for (Index chunk_end = T; chunk_end > 0; chunk_end -= upstream_steps) {
      const Index t0 = std::max<Index>(0, chunk_end - upstream_steps);
      const Index rows = (chunk_end - t0) * B;
      MatrixView<S> upstream = matrix_view(hidden_rows + t0 * B * H, rows, H, H);
      upstream.setZero();
      upstream_product.accumulate_rows(d_logits.data() + t0 * B * width, width, upstream.data(),
                                       H, rows);
      upstream_done.publish(T - t0);
    }
    head_parameter_gradients(hidden_states, d_logits, head_grads);
  };
  // The layer's backward pass, on the first thread, which has the states in its cache: the
  // loop, then dW, dx and dh0; dU on the other thread, once the loop is through.
  auto run_backward = [&] {
    backward_recurrence(
        layer, inputs, activation, hidden, static_cast<const S*>(nullptr), upstream_steps,
        [&](Index t0, Index) { upstream_done.wait_for(T - t0); }, [](Index, Index) {},
        GradientRows<S>{hidden_rows, H, B, TimeOrder{T, false}}, layer_grads.b);
    backward_done.publish(1);
    multiply(matrix_view(layer_grads.W, H, H, H), da.transpose(), previous);
    input_and_initial_state_gradients(layer, layer_grads, da, B);
  };
  auto input_weight_gradient = [&] {
    backward_done.wait_for(1);
    input_side.add(0, da);
    input_side.finish();
  };

  on_threads(std::min(2, free_threads()), [&](int thread, int threads) {
    if (threads == 1) {  // no second thread to be had: the same work, one part after another
      run_forward();
      follow_forward();
      run_backward();
      input_weight_gradient();
    } else if (thread == 0) {
      run_forward();
      run_backward();
    } else if (thread == 1) {
      follow_forward();
      input_weight_gradient();
    }
    when_gradients_done(call.done, thread, threads, step_losses, reduced);
  });
  return total_loss(step_losses, reduced);
}

// Segments on two threads. The first thread computes the segments forward, keeping the state
// before each; then, from the last segment, it runs each chunk's backward recurrence, dW, dU,
// dx and dh0. The other thread works ahead of it on each chunk's head (logits, loss, dO, dL/dh
// in rings of chunks) and dV and dc, and, between heads, computes the next segment's states
// again into the other segment buffer.
template <class S, class State>
double pipelined_segments_loss_and_grad(const LossCall<S>& call, const LossPlan& plan,
                                        State* checkpoints, State* segment_buffers[2],
                                        S* d_pre_ring, S* d_logits_ring, S* h_last) {
  const LossChunks& chunks = plan.chunks;
  const Index T = call.inputs.steps, B = call.inputs.batch, H = call.layer.hidden_size;
  const Index O = call.head.output_size, n = chunks.count, L = plan.segment_chunks;
  const Index segments = (n + L - 1) / L, ring = kPipelineRingChunks, BH = B * H;
  ChunkedLoss<S, State> loss(call, chunks,
                      GradientRows<S>{d_pre_ring, H, B, TimeOrder{T, false}, chunks.chunk_steps,
                                      ring});
  // Segment k holds the chunks [first_chunk(k), first_chunk(k + 1)), counted from the last.
  auto first_chunk = [&](Index k) { return std::max<Index>(0, n - (segments - k) * L); };
  auto buffer = [&](Index k) { return segment_buffers[k % 2]; };
  auto first_slot = [&](Index k) { return chunks.begin(first_chunk(k)); };
  auto d_logits = [&](Index j) {
    return d_logits_ring + ((n - 1 - j) % ring) * chunks.chunk_steps * B * O;
  };
  auto copy_state = [&](const State* from, State* to) { std::copy_n(from, BH, to); };
  auto start_segment = [&](Index k) { copy_state(checkpoints + k * BH, buffer(k)); };
  auto forward_chunk = [&](Index k, Index j) { loss.forward(j, buffer(k), first_slot(k)); };

  // The first pass: every segment forward, the state before each kept; the last stays.
  auto first_pass = [&] {
    loss.initial_state(checkpoints);
    for (Index k = 0; k < segments; ++k) {
      start_segment(k);
      for (Index j = first_chunk(k); j < first_chunk(k + 1); ++j) forward_chunk(k, j);
      const State* last = buffer(k) + (chunks.end(first_chunk(k + 1) - 1) - first_slot(k)) * BH;
      if (k + 1 < segments) copy_state(last, checkpoints + (k + 1) * BH);
      else loss.state_out(last, h_last);
    }
  };
  auto head = [&](Index k, Index j) {
    loss.head(j, buffer(k), first_slot(k), d_logits(j));
    loss.head_sums(j, buffer(k), first_slot(k), d_logits(j));
  };
  auto backward = [&](Index k, Index j) {
    loss.backward(j, buffer(k), first_slot(k));
    loss.layer_sums(j, buffer(k), first_slot(k));
    loss.rows_of_input_gradients(j);
  };

  StepCounter first_pass_done, heads_done, chunks_done;
  // Counts of chunks from the last: heads_done and chunks_done reach n - j once chunk j's head,
  // or its backward pass and sums, are done.
  auto heads_thread = [&] {
    first_pass_done.wait_for(1);
    for (Index k = segments - 1; k >= 0; --k) {
      Index recomputed = k > 0 ? first_chunk(k - 1) : 0;  // the next chunk of segment k - 1
      const Index recompute_end = k > 0 ? first_chunk(k) : 0;
      auto recompute_one = [&] {
        if (recomputed == (k > 0 ? first_chunk(k - 1) : 0)) {
          // Segment k + 1's buffer is segment k - 1's: free once its chunks are done.
          chunks_done.wait_for(n - first_chunk(std::min(k + 1, segments)));
          start_segment(k - 1);
        }
        forward_chunk(k - 1, recomputed++);
      };
      for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j) {
        chunks_done.wait_for(n - std::min(n, j + ring - 1));  // j's ring slots are free
        head(k, j);
        heads_done.publish(n - j);
        if (recomputed < recompute_end) recompute_one();
      }
      while (recomputed < recompute_end) recompute_one();
    }
  };
  auto backward_thread = [&] {
    for (Index k = segments - 1; k >= 0; --k)
      for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j) {
        heads_done.wait_for(n - j);
        backward(k, j);
        chunks_done.publish(n - j);
      }
  };

  double total = 0.0;
  on_threads(std::min(2, free_threads()), [&](int thread, int threads) {
    if (threads == 1) {  // no second thread to be had: the same work, one part after another
      first_pass();
      for (Index k = segments - 1; k >= 0; --k) {
        for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j) {
          head(k, j);
          backward(k, j);
        }
        if (k > 0) {
          start_segment(k - 1);
          for (Index j = first_chunk(k - 1); j < first_chunk(k); ++j) forward_chunk(k - 1, j);
        }
      }
    } else if (thread == 0) {
      first_pass();
      first_pass_done.publish(1);
      backward_thread();
    } else if (thread == 1) {
      heads_thread();
    }
    team_barrier(threads);
    if (thread == 0) total = loss.finish();
    team_barrier(threads);
    if (call.done) call.done->run(thread, threads, total);
  });
  return total;
}

#define BPTT_INSTANTIATE(S, State)                                                             \
  template double pipelined_segments_loss_and_grad<S, State>(                                  \
      const LossCall<S>&, const LossPlan&, State*, State* [2], S*, S*, S*);                    \
  template double pipelined_loss_and_grad<S, State>(const LossCall<S>&, const LossChunks&,     \
                                                    State*, S*, S*, S*);
BPTT_INSTANTIATE(float, float)
BPTT_INSTANTIATE(double, double)
BPTT_INSTANTIATE(float, Bfloat16)  // bfloat16 operands: the states stored as bfloat16
#undef BPTT_INSTANTIATE
template double stepwise_loss_and_grad<float>(const LossCall<float>&, const LossScratch<float>&);
template double stepwise_loss_and_grad<double>(const LossCall<double>&,
                                               const LossScratch<double>&);

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
