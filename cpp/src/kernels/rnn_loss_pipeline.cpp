#include "rnn_loss_pipeline.hpp"

#include "recurrence.hpp"
#include "softmax_head.hpp"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

// Below kMinRows rows in all (one short sequence), a product's fixed cost would dominate chunks
// of kPipelineChunkRows (chunks.hpp): such problems run stepwise instead.
constexpr Index kMinChunks = 8;
constexpr Index kMinRows = 4 * kPipelineChunkRows;
// dL/dh = Vᵀ dO replaces dO in its rows of logit_rows, staged through hidden_rows this many rows
// at a time: a few per-step vectors of scratch rather than a chunk's rows.
constexpr Index kStagingRows = 16;
// The stepwise schedule's chunks of dL/dh: about this many rows, few enough that the backward
// loop, which waits for the first of them, starts soon after the forward recurrence ends.
constexpr Index kUpstreamRows = 4;

// How far one thread has got, for the other to wait on. A wait spins briefly (a chunk takes
// microseconds), then yields the CPU, which on a busy machine may be needed by the thread
// being waited for. Each counter has a cache line of its own, which only its writer changes.
class alignas(64) StepCounter {
 public:
  void publish(Index done) { done_.store(done, std::memory_order_release); }

  void wait_for(Index done) const {
    for (int spins = 0; done_.load(std::memory_order_acquire) < done; ++spins) {
      if (spins < kSpinsBeforeYield) pause();
      else std::this_thread::yield();
    }
  }

 private:
  static constexpr int kSpinsBeforeYield = 4096;
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
  }
  std::atomic<Index> done_{0};
};

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

TwoThreadSchedule two_thread_schedule(const ProblemSize& size, bool has_lengths, bool reverse) {
  const bool applies = free_threads() >= 2 &&
                       recurrence_threads(size.batch, size.hidden_size) == 1 && !has_lengths &&
                       !reverse && size.steps >= 2 && size.batch > 0 && size.hidden_size > 0 &&
                       size.output_size > 0;
  if (!applies) return TwoThreadSchedule::none;
  const Index rows = size.steps * size.batch;
  if (size.steps >= kMinChunks && rows >= kMinRows) return TwoThreadSchedule::pipeline;
  if (rows < kMinRows) return TwoThreadSchedule::stepwise;
  return TwoThreadSchedule::none;
}

Index schedule_hidden_rows(TwoThreadSchedule schedule, const ProblemSize& size) {
  const Index rows = size.steps * size.batch;
  switch (schedule) {
    case TwoThreadSchedule::pipeline:
      return std::min(kStagingRows, pipeline_chunk_steps(size.steps, size.batch) * size.batch);
    case TwoThreadSchedule::stepwise:
      return rows;  // dL/dh, then dL/da, of every row, while dO stays in logit_rows for dV
    case TwoThreadSchedule::none:
      break;
  }
  return 0;
}

Index pipeline_chunk_steps(Index steps, Index batch) {
  return steps_per_chunk(kPipelineChunkRows, batch, steps / kMinChunks);
}

template <class S>
double pipelined_loss_and_grad(const LossCall<S>& call, const LossScratch<S>& scratch) {
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
  const Index chunk_steps = pipeline_chunk_steps(T, B);
  const Index chunks = (T + chunk_steps - 1) / chunk_steps;
  const LossReduction reduced{call.reduction, counted_targets(targets, N)};
  const S scale = reduced.gradient_scale<S>();
  std::vector<double> chunk_losses(size_t(chunks), 0.0);
  // Slot 0 holds h0 and slot t + 1 holds h_t (recurrent_layer.hpp): the states before the
  // steps of rows [r, r + n) are rows [r, r + n) of the buffer.
  const S* hidden = states + B * H;
  const ConstMatrixView<S> previous = matrix_view(static_cast<const S*>(states), N, H, H);

  // Dense inputs are projected a chunk at a time by the recurrence's thread, just before it
  // needs them, so that the follower starts after one chunk rather than the whole projection.
  const Index projected_ahead = inputs.dense ? chunk_steps : T;
  prepare_states(layer, inputs, call.h0, states, projected_ahead);

  StepCounter forward_done, head_done, backward_done;
  auto run_forward = [&] {
    forward_recurrence(layer.W, inputs, H, activation, states, [&](Index done) {
      forward_done.publish(done);
      if (done % projected_ahead == 0 && done < T)
        project_steps(layer, inputs, done, std::min(T, done + projected_ahead), states);
    });
  };
  auto run_backward = [&] {
    backward_recurrence(layer.W, inputs, H, activation, hidden, static_cast<const S*>(nullptr), T,
                        [](Index, Index) {}, [](Index, Index) {},
                        GradientRows<S>{logit_rows, width, B, TimeOrder{T, false}}, layer_grads.b,
                        [&](Index done) { backward_done.publish(done); });
  };
  auto rows_of = [&](Index c) {
    const Index first = c * chunk_steps * B;
    return std::pair<Index, Index>{first, std::min(N, first + chunk_steps * B) - first};
  };
  // Logits, loss, dV, dc and dL/dh (in place of the logits, as the backward loop's upstream).
  auto follow_forward = [&] {
    for (Index c = 0; c < chunks; ++c) {
      const auto [first, rows] = rows_of(c);
      forward_done.wait_for(std::min(T, (c + 1) * chunk_steps));
      const ConstMatrixView<S> h = matrix_view(hidden + first * H, rows, H, H);
      MatrixView<S> logits = matrix_view(logit_rows + first * width, rows, O, width);
      head_logits(head, h, logits);
      chunk_losses[size_t(c)] =
          softmax_cross_entropy_rows(logits, targets_from(targets, first, O), scale);
      const ConstMatrixView<S> d_logits =
          matrix_view(static_cast<const S*>(logits.data()), rows, O, width);
      head_parameter_gradients(h, d_logits, head_grads, c > 0);
      for (Index r = 0; r < rows; r += kStagingRows) {
        const Index staged_rows = std::min(kStagingRows, rows - r);
        MatrixView<S> staged = matrix_view(hidden_rows, staged_rows, H, H);
        head_hidden_gradient(head, matrix_view(d_logits.data() + r * width, staged_rows, O, width),
                             staged);
        matrix_view(logit_rows + (first + r) * width, staged_rows, H, width) = staged;
      }
      head_done.publish(c + 1);
    }
  };
  // dW and dU from the pre-activation gradients behind the backward loop, a chunk at a time
  // from the last steps, as the loop completes them; dx and dh0 after it, on the loop's thread,
  // which would otherwise wait.
  MatrixView<S> dW = matrix_view(layer_grads.W, H, H, H);
  InputGradientSum<S> input_side(layer, inputs, layer_grads);
  auto follow_backward = [&] {
    dW.setZero();
    for (Index chunk_end = T; chunk_end > 0; chunk_end -= chunk_steps) {
      const Index chunk_begin = std::max<Index>(0, chunk_end - chunk_steps);
      const Index first = chunk_begin * B, rows = (chunk_end - chunk_begin) * B;
      backward_done.wait_for(T - chunk_begin);
      const ConstMatrixView<S> d_pre = matrix_view(static_cast<const S*>(logit_rows) + first * width,
                                                   rows, H, width);
      multiply(dW, d_pre.transpose(), previous.middleRows(first, rows), true);
      input_side.add(first, d_pre);
    }
    input_side.finish();
  };
  auto finish_backward = [&] {
    input_and_initial_state_gradients(
        layer, layer_grads, matrix_view(static_cast<const S*>(logit_rows), N, H, width), B);
  };

  on_threads(2, [&](int thread, int threads) {
    if (threads == 1) {  // no second thread to be had: the same work, one part after another
      run_forward();
      follow_forward();
      run_backward();
      follow_backward();
      finish_backward();
    } else if (thread == 0) {
      run_forward();
      head_done.wait_for(chunks);  // the backward loop starts from the last chunk's dL/dh
      run_backward();
      finish_backward();
    } else if (thread == 1) {
      follow_forward();
      follow_backward();
    }
    when_gradients_done(call.done, thread, threads, chunk_losses, reduced);
  });
  return total_loss(chunk_losses, reduced);
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
    forward_recurrence(layer.W, inputs, H, activation, states,
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
        layer.W, inputs, H, activation, hidden, static_cast<const S*>(nullptr), upstream_steps,
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

  on_threads(2, [&](int thread, int threads) {
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

template double pipelined_loss_and_grad<float>(const LossCall<float>&,
                                               const LossScratch<float>&);
template double pipelined_loss_and_grad<double>(const LossCall<double>&,
                                                const LossScratch<double>&);
template double stepwise_loss_and_grad<float>(const LossCall<float>&, const LossScratch<float>&);
template double stepwise_loss_and_grad<double>(const LossCall<double>&,
                                               const LossScratch<double>&);

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
