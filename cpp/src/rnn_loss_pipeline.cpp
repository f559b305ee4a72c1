#include "rnn_loss_pipeline.hpp"

#include "bptt/recurrent_layer.hpp"
#include "bptt/softmax_head.hpp"
#include "bptt/step_product.hpp"
#include "bptt/threads.hpp"

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {
namespace detail {
namespace {

// About this many rows per chunk: enough for efficient products, few enough that the follower
// is never far behind. Below kMinRows rows in all (one short sequence), a product's fixed cost
// would dominate chunks this small: such problems are split instead.
constexpr Index kRowsPerChunk = 64;
constexpr Index kMinChunks = 8;
constexpr Index kMinRows = 4 * kRowsPerChunk;
// dL/dh = Vᵀ dO replaces dO in its rows of work, staged through the chunk buffer this many rows
// at a time: a few per-step vectors of scratch rather than a chunk's rows.
constexpr Index kStagingRows = 16;

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

}  // namespace

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

Index schedule_chunk_rows(TwoThreadSchedule schedule, const ProblemSize& size) {
  const Index rows = size.steps * size.batch;
  switch (schedule) {
    case TwoThreadSchedule::pipeline:
      return std::min(kStagingRows, pipeline_chunk_steps(size.steps, size.batch) * size.batch);
    case TwoThreadSchedule::stepwise:
      return rows;  // dL/da of every row, while dO stays in work for dV
    case TwoThreadSchedule::none:
      break;
  }
  return 0;
}

Index pipeline_chunk_steps(Index steps, Index batch) {
  const Index by_rows = (kRowsPerChunk + batch - 1) / std::max<Index>(1, batch);
  return std::clamp<Index>(by_rows, 1, std::max<Index>(1, steps / kMinChunks));
}

template <class S>
double pipelined_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                               const SequenceInput<S>& inputs, const Targets<S>& targets,
                               const S* h0, Activation activation, Reduction reduction,
                               const LayerGradients<S>& layer_grads,
                               const HeadGradients<S>& head_grads, S* states, S* work, S* chunk) {
  const Index T = inputs.steps, B = inputs.batch, H = layer.hidden_size;
  const Index O = head.output_size, N = T * B, width = std::max(H, O);
  const Index chunk_steps = pipeline_chunk_steps(T, B);
  const Index chunks = (T + chunk_steps - 1) / chunk_steps;
  const LossReduction reduced{reduction, counted_targets(targets, N)};
  const S scale = reduced.gradient_scale<S>();
  std::vector<double> chunk_losses(size_t(chunks), 0.0);
  // Slot 0 holds h0 and slot t + 1 holds h_t (recurrent_layer.hpp): the states before the
  // steps of rows [r, r + n) are rows [r, r + n) of the buffer.
  const S* hidden = states + B * H;
  const ConstMatrixView<S> previous = matrix_view(static_cast<const S*>(states), N, H, H);

  // Dense inputs are projected a chunk at a time by the recurrence's thread, just before it
  // needs them, so that the follower starts after one chunk rather than the whole projection.
  const Index projected_ahead = inputs.dense ? chunk_steps : T;
  prepare_states(layer, inputs, h0, states, projected_ahead);

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
                        GradientRows<S>{work, width, B, TimeOrder{T, false}}, layer_grads.b,
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
      MatrixView<S> logits = matrix_view(work + first * width, rows, O, width);
      head_logits(head, h, logits);
      chunk_losses[size_t(c)] =
          softmax_cross_entropy_rows(logits, targets_from(targets, first, O), scale);
      const ConstMatrixView<S> d_logits =
          matrix_view(static_cast<const S*>(logits.data()), rows, O, width);
      head_parameter_gradients(h, d_logits, head_grads, c > 0);
      for (Index r = 0; r < rows; r += kStagingRows) {
        const Index staged_rows = std::min(kStagingRows, rows - r);
        MatrixView<S> staged = matrix_view(chunk, staged_rows, H, H);
        head_hidden_gradient(head, matrix_view(d_logits.data() + r * width, staged_rows, O, width),
                             staged);
        matrix_view(work + (first + r) * width, staged_rows, H, width) = staged;
      }
      head_done.publish(c + 1);
    }
  };
  // dW, db and dU from the pre-activation gradients, latest chunk first, behind the backward
  // loop; dx and dh0 after it, on the loop's thread, which would otherwise wait.
  MatrixView<S> dW = matrix_view(layer_grads.W, H, H, H);
  InputGradientSum<S> input_side(layer, inputs, layer_grads);
  auto follow_backward = [&] {
    dW.setZero();
    for (Index c = chunks - 1; c >= 0; --c) {
      const auto [first, rows] = rows_of(c);
      backward_done.wait_for(T - c * chunk_steps);
      const ConstMatrixView<S> d_pre = matrix_view(static_cast<const S*>(work) + first * width,
                                                   rows, H, width);
      multiply(dW, d_pre.transpose(), previous.middleRows(first, rows), true);
      input_side.add(first, d_pre);
    }
  };
  auto finish_backward = [&] {
    input_and_initial_state_gradients(
        layer, layer_grads, matrix_view(static_cast<const S*>(work), N, H, width), B);
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
  });
  input_side.finish();

  double loss = 0.0;
  for (const double chunk_loss : chunk_losses) loss += chunk_loss;
  return reduced.loss(loss);
}

template <class S>
double stepwise_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                              const SequenceInput<S>& inputs, const Targets<S>& targets,
                              const S* h0, Activation activation, Reduction reduction,
                              const LayerGradients<S>& layer_grads,
                              const HeadGradients<S>& head_grads, S* states, S* work, S* chunk) {
  const Index T = inputs.steps, B = inputs.batch, H = layer.hidden_size;
  const Index O = head.output_size, N = T * B, width = std::max(H, O);
  const LossReduction reduced{reduction, counted_targets(targets, N)};
  const S scale = reduced.gradient_scale<S>();
  std::vector<double> step_losses(size_t(T), 0.0);
  const S* hidden = states + B * H;
  const ConstMatrixView<S> hidden_states = matrix_view(hidden, N, H, H);
  const ConstMatrixView<S> previous = matrix_view(static_cast<const S*>(states), N, H, H);
  // work: each step's logits, then dL/do in place; chunk: dL/dh_t = Vᵀ dO_t, then da in place.
  const ConstMatrixView<S> d_logits = matrix_view(static_cast<const S*>(work), N, O, width);
  const ConstMatrixView<S> da = matrix_view(static_cast<const S*>(chunk), N, H, H);
  const ConstRowVectorView<S> c(head.c, O);

  prepare_states(layer, inputs, h0, states, T);
  InputGradientSum<S> input_side(layer, inputs, layer_grads);
  StepCounter forward_done, logits_done, early_upstream_done;
  auto run_forward = [&] {
    forward_recurrence(layer.W, inputs, H, activation, states,
                       [&](Index done) { forward_done.publish(done); });
  };
  // dL/dh = Vᵀ dO of the steps [t0, t1).
  auto upstream = [&](Index t0, Index t1) {
    const Index rows = (t1 - t0) * B;
    head_hidden_gradient(head, matrix_view(d_logits.data() + t0 * B * width, rows, O, width),
                         matrix_view(chunk + t0 * B * H, rows, H, H));
  };
  // The backward recurrence runs the later steps first: their dL/dh comes from its own thread,
  // once every step's logits are done; that of the earlier ones from the other thread meanwhile.
  const Index early_steps = T / 2;
  // Logits and loss of each step as soon as the forward recurrence has its state (with V packed
  // once for all the steps, where a product per step would pack it every time); then dL/dh of
  // the early steps, then dV and dc from all the rows. Both products with V in the step loop
  // would not fit in the L1 cache together.
  auto follow_forward = [&] {
    StepProduct<S> logits_product(head.V, H, WeightUse::transposed, 0, O, B, H, T);
    for (Index t = 0; t < T; ++t) {
      forward_done.wait_for(t + 1);
      const Index first = t * B;
      MatrixView<S> logits = matrix_view(work + first * width, B, O, width);
      logits.rowwise() = c;
      logits_product.accumulate(hidden + first * H, H, logits.data(), width);
      step_losses[size_t(t)] =
          softmax_cross_entropy_rows(logits, targets_from(targets, first, O), scale);
      logits_done.publish(t + 1);
    }
    upstream(0, early_steps);
    early_upstream_done.publish(1);
  };
  auto run_backward = [&] {
    auto fill_upstream = [&](Index t0, Index t1) {
      if (t0 == 0) {
        early_upstream_done.wait_for(1);
      } else {
        logits_done.wait_for(T);
        upstream(t0, t1);
      }
    };
    backward_recurrence(layer.W, inputs, H, activation, hidden, static_cast<const S*>(nullptr),
                        T - early_steps, fill_upstream, [](Index, Index) {},
                        GradientRows<S>{chunk, H, B, TimeOrder{T, false}}, layer_grads.b);
  };
  // dW by halves of its rows, one for each thread, the same halves with any thread count.
  auto recurrent_weight_rows = [&](int half) {
    const auto [first, last] = column_share(H, half, 2);
    multiply(matrix_view(layer_grads.W + first * H, last - first, H, H),
             da.middleCols(first, last - first).transpose(), previous);
  };

  on_threads(2, [&](int thread, int threads) {
    if (threads == 1) {  // no second thread to be had: the same work, one part after another
      run_forward();
      follow_forward();
      head_parameter_gradients(hidden_states, d_logits, head_grads);
      run_backward();
      recurrent_weight_rows(0);
      recurrent_weight_rows(1);
      input_and_initial_state_gradients(layer, layer_grads, da, B);
      input_side.add(0, da);
      return;
    }
    if (thread == 0) {
      run_forward();
      run_backward();
    } else if (thread == 1) {
      follow_forward();
      head_parameter_gradients(hidden_states, d_logits, head_grads);
    }
    team_barrier(threads);
    if (thread == 0) {
      recurrent_weight_rows(0);
      input_and_initial_state_gradients(layer, layer_grads, da, B);
    } else if (thread == 1) {
      recurrent_weight_rows(1);
      input_side.add(0, da);
    }
  });
  input_side.finish();

  double loss = 0.0;
  for (const double step_loss : step_losses) loss += step_loss;
  return reduced.loss(loss);
}

#define BPTT_INSTANTIATE_TWO_THREAD_SCHEDULE(function, S)                                       \
  template double function<S>(const LayerWeights<S>&, const HeadWeights<S>&,                  \
                              const SequenceInput<S>&, const Targets<S>&, const S*, Activation, \
                              Reduction, const LayerGradients<S>&, const HeadGradients<S>&, S*, \
                              S*, S*);
BPTT_INSTANTIATE_TWO_THREAD_SCHEDULE(pipelined_loss_and_grad, float)
BPTT_INSTANTIATE_TWO_THREAD_SCHEDULE(pipelined_loss_and_grad, double)
BPTT_INSTANTIATE_TWO_THREAD_SCHEDULE(stepwise_loss_and_grad, float)
BPTT_INSTANTIATE_TWO_THREAD_SCHEDULE(stepwise_loss_and_grad, double)

}  // namespace detail
}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
