// The chunked schedule of the whole model (loss_plan.hpp), one chunk's work at a time, for the
// ways of running it (rnn_loss.cpp on one team of threads, with every state kept or some
// computed again; rnn_loss_pipeline.cpp on two threads). Each runs the same products on the
// same rows and takes every sum in the same order, so every way gives the same bits:
// - forward(j): b + U x_t for the chunk's steps, then its steps of the recurrence;
// - head(j): its logits, its rows' losses (summed in row order, the chunks' sums in chunk order
//   at the end), dO in place of the logits, and dL/dh = dO V;
// - backward(j): the backward recurrence over its steps, from the last;
// - head_sums(j): dV += dOᵀ h and dc += Σ dO; layer_sums(j): dW += daᵀ h_prev and dU += daᵀ x;
//   each chunk after chunk from the last; and rows(j): dx = da U, and dh0 = da_0 W from the
//   first chunk.
// States live in buffers of consecutive slots (bptt/state_slots.hpp: slot s holds the state
// after s steps), each holding the slots from a first_slot on.
#pragma once

#include "recurrence.hpp"
#include "rnn_loss_pipeline.hpp"
#include "softmax_head.hpp"

#include "../loss_plan.hpp"

#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE::detail {

template <class S>
class ChunkedLoss {
 public:
  // Zeroes the gradients that sums() adds to. `d_pre`: the rows of dL/dh, then dL/da, where
  // head() and backward() put them (a ring of two chunks, or every row).
  ChunkedLoss(const LossCall<S>& call, const LossChunks& chunks, const GradientRows<S>& d_pre)
      : call_(call),
        chunks_(chunks),
        B_(call.inputs.batch),
        H_(call.layer.hidden_size),
        O_(call.head.output_size),
        reduced_{call.reduction, counted_targets(call.targets, call.inputs.steps * B_)},
        chunk_losses_(size_t(chunks.count), 0.0),
        d_pre_(d_pre),
        forward_(call.layer.W, call.inputs, H_, call.activation, call.layer.operands),
        backward_(call.layer.W, call.inputs, H_, call.activation, call.layer.operands, nullptr,
                  d_pre, call.layer_grads.b),
        input_side_(call.layer, call.inputs, call.layer_grads) {
    matrix_view(call.layer_grads.W, H_, H_, H_).setZero();
    matrix_view(call.head_grads.V, O_, H_, H_).setZero();
    RowVectorView<S>(call.head_grads.c, O_).setZero();
  }

  const LossChunks& chunks() const { return chunks_; }
  Index rows(Index j) const { return (chunks_.end(j) - chunks_.begin(j)) * B_; }

  // The state before the first step (h0, or zeros) into a buffer's slot 0.
  void initial_state(S* slot) const {
    MatrixView<S> initial = matrix_view(slot, B_, H_, H_);
    if (call_.h0) initial = matrix_view(call_.h0, B_, H_, H_);
    else initial.setZero();
    if (call_.layer.operands == ProductOperands::bfloat16) round_to_bfloat16(initial);
  }

  // The chunk's states into `states` (slots from first_slot on), whose slot before the chunk
  // holds the state its first step starts from; progress(k + 1) after each step k.
  template <class Progress = NoProgress>
  void forward(Index j, S* states, Index first_slot, Progress&& progress = {}) {
    project_steps(call_.layer, call_.inputs, chunks_.begin(j), chunks_.end(j), states,
                  first_slot);
    forward_.run(chunks_.begin(j), chunks_.end(j), states, first_slot,
                 std::forward<Progress>(progress));
  }

  // The chunk's logits into `logits` (rows × output_size), then dO in place; its loss; and
  // dL/dh into its rows of d_pre.
  void head(Index j, const S* states, Index first_slot, S* logits) {
    const Index first_row = chunks_.begin(j) * B_, n = rows(j);
    const ConstMatrixView<S> h = hidden_rows(j, states, first_slot);
    MatrixView<S> o = matrix_view(logits, n, O_, O_);
    head_logits(call_.head, h, o);
    chunk_losses_[size_t(j)] = softmax_cross_entropy_rows(
        o, targets_from(call_.targets, first_row, O_), reduced_.gradient_scale<S>());
    if (call_.head.operands == ProductOperands::bfloat16) round_to_bfloat16(o);
    head_hidden_gradient(call_.head, matrix_view(static_cast<const S*>(logits), n, O_, O_),
                         matrix_view(d_pre_.at(chunks_.begin(j)), n, H_, d_pre_.stride));
  }

  // The backward recurrence over the chunk's steps; progress(n) when the last n steps are done.
  template <class Progress = NoProgress>
  void backward(Index j, const S* states, Index first_slot, Progress&& progress = {}) {
    auto hidden_at = [&](Index t) { return states + (t + 1 - first_slot) * B_ * H_; };
    backward_.run(chunks_.begin(j), chunks_.end(j), hidden_at, std::forward<Progress>(progress));
  }

  // The chunk's terms of dV and dc (called for each chunk, from the last).
  void head_sums(Index j, const S* states, Index first_slot, const S* d_logits) {
    const Index n = rows(j);
    const ConstMatrixView<S> dO = matrix_view(d_logits, n, O_, O_);
    multiply(matrix_view(call_.head_grads.V, O_, H_, H_), dO.transpose(),
             hidden_rows(j, states, first_slot), true);
    RowVectorView<S> dc(call_.head_grads.c, O_);
    for (Index r = 0; r < n; ++r) dc += dO.row(r);
  }

  // The chunk's terms of dW and dU (called for each chunk, from the last).
  void layer_sums(Index j, const S* states, Index first_slot) {
    const ConstMatrixView<S> da = d_pre_rows(j);
    const ConstMatrixView<S> previous =
        matrix_view(states + (chunks_.begin(j) - first_slot) * B_ * H_, rows(j), H_, H_);
    multiply(matrix_view(call_.layer_grads.W, H_, H_, H_), da.transpose(), previous, true);
    input_side_.add(chunks_.begin(j) * B_, da);
  }

  void sums(Index j, const S* states, Index first_slot, const S* d_logits) {
    head_sums(j, states, first_slot, d_logits);
    layer_sums(j, states, first_slot);
  }

  // The chunk's rows of dx, and dh0 from the first chunk.
  void rows_of_input_gradients(Index j) {
    const ConstMatrixView<S> da = d_pre_rows(j);
    input_gradient_rows(call_.layer, call_.layer_grads, chunks_.begin(j) * B_, da);
    if (j == 0) {
      matrix_view(call_.layer_grads.h0, B_, H_, H_).noalias() =
          da.topRows(B_) * matrix_view(call_.layer.W, H_, H_, H_);
    }
  }

  // Frees the weights packed for the step loops, until they next run (a schedule that
  // alternates between forward segments and backward ones holds one packing at a time).
  void release_forward_packing() { forward_.release_packing(); }
  void release_backward_packing() { backward_.release_packing(); }

  // Finishes dU and returns L: the chunks' losses summed in chunk order, reduced.
  double finish() {
    input_side_.finish();
    double loss = 0.0;
    for (const double chunk_loss : chunk_losses_) loss += chunk_loss;
    return reduced_.loss(loss);
  }

 private:
  ConstMatrixView<S> hidden_rows(Index j, const S* states, Index first_slot) const {
    return matrix_view(states + (chunks_.begin(j) + 1 - first_slot) * B_ * H_, rows(j), H_, H_);
  }
  ConstMatrixView<S> d_pre_rows(Index j) const {
    return matrix_view(static_cast<const S*>(d_pre_.at(chunks_.begin(j))), rows(j), H_,
                       d_pre_.stride);
  }

  const LossCall<S>& call_;
  LossChunks chunks_;
  Index B_, H_, O_;
  LossReduction reduced_;
  std::vector<double> chunk_losses_;
  GradientRows<S> d_pre_;
  ForwardRecurrence<S> forward_;
  BackwardRecurrence<S> backward_;
  InputGradientSum<S> input_side_;
};

}  // namespace bptt::BPTT_ISA_NAMESPACE::detail
