// The loss step by step on two threads, for a single sequence (rnn_loss_pipeline.hpp).
#include "rnn_loss_pipeline.hpp"

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
  assign_product(matrix_view(layer_grads.h0, batch, H, H), rows_view(da.topRows(batch)),
                 matrix_view(layer.W, H, H, H));
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

#define BPTT_INSTANTIATE(S) \
  template double stepwise_loss_and_grad<S>(const LossCall<S>&, const LossScratch<S>&);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
