// The chunked schedule of the whole model (loss_plan.hpp), one chunk's work at a time, for the
// ways of running it (rnn_loss.cpp on one team of threads, with every state kept or some
// computed again; rnn_loss_pipeline_*.cpp on two threads). Each runs the same products on the
// same rows and takes every sum in the same order, so every way gives the same bits:
// - forward(j): b + U x_t for the chunk's steps, then its steps of the recurrence;
// - head(j): its logits, its rows' losses (summed in row order, the chunks' sums in chunk order
//   at the end), dO in place of the logits, and dL/dh = dO V;
// - backward(j): the backward recurrence over its steps, from the last;
// - head_sums(j): dV += dOᵀ h and dc += Σ dO; layer_sums(j): dW += daᵀ h_prev and dU += daᵀ x;
//   each chunk after chunk from the last; and rows(j): dx = da U, and dh0 = da_0 W from the
//   first chunk.
// States live in buffers of consecutive slots (bptt/state_slots.hpp: slot s holds the state
// after s steps), each holding the slots from a first_slot on, of type State: S, or, with
// bfloat16 operands, Bfloat16 (bfloat16.hpp), which each piece converts to S a chunk at a time,
// into a block of its own (so that two threads running different pieces never share one).
#pragma once

#include "bfloat16.hpp"
#include "recurrence.hpp"
#include "rnn_loss_pipeline.hpp"
#include "softmax_head.hpp"

#include "../loss_plan.hpp"

#include <type_traits>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE::detail {

template <class S, class State = S>
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
    if constexpr (kConverts) {
      for (std::vector<S>& block : converted_)
        block.resize(std::size_t((chunks.chunk_steps + 1) * B_ * H_));
    }
    if (call.layer.operands == ProductOperands::bfloat16 && call.inputs.dense) {
      for (std::vector<S>& block : rounded_inputs_)
        block.resize(std::size_t(chunks.chunk_steps * B_ * call.layer.input_size));
    }
    matrix_view(call.layer_grads.W, H_, H_, H_).setZero();
    matrix_view(call.head_grads.V, O_, H_, H_).setZero();
    RowVectorView<S>(call.head_grads.c, O_).setZero();
  }

  const LossChunks& chunks() const { return chunks_; }
  Index rows(Index j) const { return (chunks_.end(j) - chunks_.begin(j)) * B_; }

  // The state before the first step (h0, or zeros) into a buffer's slot 0.
  void initial_state(State* slot) {
    S* const initial_slot = kConverts ? converted_[kForward].data() : reinterpret_cast<S*>(slot);
    MatrixView<S> initial = matrix_view(initial_slot, B_, H_, H_);
    if (call_.h0) initial = matrix_view(call_.h0, B_, H_, H_);
    else initial.setZero();
    if (call_.layer.operands == ProductOperands::bfloat16) round_to_bfloat16(initial);
    if constexpr (kConverts) store_states(initial_slot, B_ * H_, slot);
  }

  // A stored state (B × H) out as S: h_last.
  void state_out(const State* slot, S* out) const { load_states(slot, B_ * H_, out); }

  // The chunk's states into `states` (slots from first_slot on), whose slot before the chunk
  // holds the state its first step starts from; progress(k + 1) after each step k (with states
  // stored otherwise than as S, once the chunk is stored: progress(end of the chunk)).
  template <class Progress = NoProgress>
  void forward(Index j, State* states, Index first_slot, Progress&& progress = {}) {
    const Index begin = chunks_.begin(j), end = chunks_.end(j);
    if constexpr (kConverts) {
      S* const chunk_states = converted_[kForward].data();
      load_states(states + (begin - first_slot) * B_ * H_, B_ * H_, chunk_states);
      project_steps(call_.layer, call_.inputs, begin, end, chunk_states, begin,
                    rounded_inputs(j, kForward));
      forward_.run(begin, end, chunk_states, begin);
      store_states(static_cast<const S*>(chunk_states) + B_ * H_, (end - begin) * B_ * H_,
                   states + (begin + 1 - first_slot) * B_ * H_);
      progress(end);
    } else {
      project(j, states, first_slot);
      recur(j, states, first_slot, std::forward<Progress>(progress));
    }
  }

  // Whether forward(j) may run as its two parts, project(j) and recur(j), on different threads:
  // with states stored as S and inputs read as they are, the projection goes straight into the
  // chunk's own slots, which no other chunk's steps touch.
  bool projects_apart() const { return !kConverts && rounded_inputs_[0].empty(); }

  // b + U x_t for the chunk's steps, into their slots (states stored as S).
  void project(Index j, State* states, Index first_slot) {
    if constexpr (!kConverts) {
      project_steps(call_.layer, call_.inputs, chunks_.begin(j), chunks_.end(j), states,
                    first_slot, rounded_inputs(j, kForward));
    }
  }

  // The chunk's steps of the recurrence, once project(j) is done (states stored as S).
  template <class Progress = NoProgress>
  void recur(Index j, State* states, Index first_slot, Progress&& progress = {}) {
    if constexpr (!kConverts) {
      forward_.run(chunks_.begin(j), chunks_.end(j), states, first_slot,
                   std::forward<Progress>(progress));
    }
  }

  // The chunk's logits into `logits` (rows × output_size), then dO in place; its loss; and
  // dL/dh into its rows of d_pre.
  void head(Index j, const State* states, Index first_slot, S* logits) {
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
  void backward(Index j, const State* states, Index first_slot, Progress&& progress = {}) {
    const Index begin = chunks_.begin(j);
    const S* const hidden = slots_as_S(states, first_slot, begin + 1, rows(j), kBackward);
    auto hidden_at = [&](Index t) { return hidden + (t - begin) * B_ * H_; };
    backward_.run(begin, chunks_.end(j), hidden_at, std::forward<Progress>(progress));
  }

  // The chunk's terms of dV and dc (called for each chunk, from the last).
  void head_sums(Index j, const State* states, Index first_slot, const S* d_logits) {
    const Index n = rows(j);
    const ConstMatrixView<S> dO = matrix_view(d_logits, n, O_, O_);
    multiply(matrix_view(call_.head_grads.V, O_, H_, H_), dO.transpose(),
             hidden_rows(j, states, first_slot), true);
    RowVectorView<S> dc(call_.head_grads.c, O_);
    for (Index r = 0; r < n; ++r) dc += dO.row(r);
  }

  // The chunk's terms of dW and dU (called for each chunk, from the last).
  void layer_sums(Index j, const State* states, Index first_slot) {
    recurrent_sums(j, states, first_slot);
    input_sums(j);
  }

  // Its term of dW alone, and of dU alone: two sums, each taken chunk after chunk from the
  // last, which may run on different threads.
  void recurrent_sums(Index j, const State* states, Index first_slot) {
    const ConstMatrixView<S> previous = matrix_view(
        slots_as_S(states, first_slot, chunks_.begin(j), rows(j), kLayerSums), rows(j), H_, H_);
    multiply(matrix_view(call_.layer_grads.W, H_, H_, H_), d_pre_rows(j).transpose(), previous,
             true);
  }
  void input_sums(Index j) {
    input_side_.add(chunks_.begin(j) * B_, d_pre_rows(j), rounded_inputs(j, kLayerSums));
  }

  void sums(Index j, const State* states, Index first_slot, const S* d_logits) {
    head_sums(j, states, first_slot, d_logits);
    layer_sums(j, states, first_slot);
  }

  // The chunk's rows of dx, and dh0 from the first chunk.
  void rows_of_input_gradients(Index j) {
    const ConstMatrixView<S> da = d_pre_rows(j);
    input_gradient_rows(call_.layer, call_.layer_grads, chunks_.begin(j) * B_, da);
    if (j == 0) {
      assign_product(matrix_view(call_.layer_grads.h0, B_, H_, H_), rows_view(da.topRows(B_)),
                     matrix_view(call_.layer.W, H_, H_, H_));
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
  static constexpr bool kConverts = !std::is_same_v<State, S>;
  // The blocks stored states are converted into, one for each piece that reads them.
  enum Block { kForward, kHead, kBackward, kLayerSums, kBlocks };

  // `rows` rows of states from slot `slot` on, as S: in place, or converted into block `block`.
  const S* slots_as_S(const State* states, Index first_slot, Index slot, Index rows, Block block) {
    const State* const first = states + (slot - first_slot) * B_ * H_;
    if constexpr (kConverts) {
      load_states(first, rows * H_, converted_[block].data());
      return converted_[block].data();
    } else {
      return first;
    }
  }

  // With bfloat16 operands, chunk j's dense inputs rounded into the block of the piece that
  // reads them (forward or layer sums: a chunk at a time rather than a copy of them all); else
  // null, for the inputs as they are.
  const S* rounded_inputs(Index j, Block block) {
    std::vector<S>& rounded = rounded_inputs_[block == kForward ? 0 : 1];
    if (rounded.empty()) return nullptr;
    const Index D = call_.layer.input_size;
    rounded_copy(call_.inputs.dense + chunks_.begin(j) * B_ * D, rows(j) * D, rounded.data());
    return rounded.data();
  }

  ConstMatrixView<S> hidden_rows(Index j, const State* states, Index first_slot) {
    return matrix_view(slots_as_S(states, first_slot, chunks_.begin(j) + 1, rows(j), kHead),
                       rows(j), H_, H_);
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
  std::vector<S> converted_[kBlocks];  // with kConverts: chunk_steps + 1 slots each
  std::vector<S> rounded_inputs_[2];   // dense inputs, bfloat16 operands: chunk_steps each
};

}  // namespace bptt::BPTT_ISA_NAMESPACE::detail
