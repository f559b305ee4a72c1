// The recurrent layer's kernels a_t = b + W h_{t-1} + U x_t, h_t = σ(a_t), piece by piece: the
// input projection, the forward and backward step loops and the gradients taken from chunks of
// the backward loop's rows, which the layer on its own (recurrent_layer.cpp) and the whole
// model (rnn_loss.cpp, rnn_loss_pipeline_*.cpp) compose. The storage of the states is described at
// the public bptt/recurrent_layer.hpp.
#pragma once

#include "activation.hpp"
#include "bfloat16.hpp"
#include "handoff.hpp"
#include "bptt/state_slots.hpp"
#include "../chunks.hpp"
#include "matrix_views.hpp"
#include "parallel_product.hpp"
#include "step_product.hpp"
#include "team.hpp"

#include <algorithm>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {

namespace detail {

// Where the pre-activation gradients da of each time step live in the backward pass: all steps'
// rows in one buffer (rows t·batch .. for time t), or, with ring_chunk_steps > 0, a ring of
// ring_chunks chunks of that many steps (two: the backward loop's current chunk and the one
// before it, which is all that the loop and the per-chunk gradients read; more for a thread
// that works ahead of the loop). A chunk's times are consecutive, and so are its rows.
template <class S>
struct GradientRows {
  S* data;
  Index stride;  // between rows, >= hidden_size
  Index batch;
  TimeOrder order;
  Index ring_chunk_steps = 0;
  Index ring_chunks = 2;

  S* at(Index t) const {
    if (ring_chunk_steps == 0) return data + t * batch * stride;
    // Chunks are counted from the last step run, as the backward loop visits them.
    const Index run = order.reverse ? order.steps - 1 - t : t;
    const Index chunk = (order.steps - 1 - run) / ring_chunk_steps;
    const Index chunk_end = order.steps - chunk * ring_chunk_steps;
    const Index chunk_begin = std::max<Index>(0, chunk_end - ring_chunk_steps);
    const Index first_time = std::min(order.time_of(chunk_begin), order.time_of(chunk_end - 1));
    return data + ((chunk % ring_chunks) * ring_chunk_steps + t - first_time) * batch * stride;
  }
};

// Padded positions: time t of sequence b is padding when t >= lengths[b].
inline bool is_padding(const Index* lengths, Index t, Index b) {
  return lengths && t >= lengths[b];
}

// a_t = b + U x_t for all steps at once: one GEMM for dense inputs, a row gather for tokens.
// Token inputs touch one column of U (and of dU) per row: for fewer rows than U has columns,
// reading and writing those columns in place, with a stride, costs less than transposing U.
inline bool reads_token_columns_in_place(Index rows, Index input_size) {
  return rows <= input_size;
}

// b + U x_t for the times [t0, t1), in their slots of a states buffer holding the slots from
// first_slot on (rows are by time in either order): one GEMM for dense inputs, a row gather for
// tokens. dense_rows, if given, holds the dense inputs of those times in place of inputs'.
template <class S>
void project_steps(const LayerWeights<S>& weights, const SequenceInput<S>& inputs, Index t0,
                   Index t1, S* states, Index first_slot = 0, const S* dense_rows = nullptr) {
  const Index D = weights.input_size, H = weights.hidden_size, B = inputs.batch;
  const Index first = t0 * B, rows = (t1 - t0) * B;
  if (rows <= 0) return;
  const TimeOrder order{inputs.steps, inputs.reverse};
  MatrixView<S> pre_activation = matrix_view(
      states + ((order.first_state_slot() - first_slot) * B + first) * H, rows, H, H);
  const ConstMatrixView<S> U = matrix_view(weights.U, H, D, D);
  const ConstRowVectorView<S> b(weights.b, H);
  const Index* tokens = inputs.tokens ? inputs.tokens + first : nullptr;
  if (tokens && reads_token_columns_in_place(inputs.steps * B, D)) {
    // U x_t with a one-hot x_t is column x_t of U.
    for (Index r = 0; r < rows; ++r) {
      const TokenId id = read_id(tokens, r);
      if (id_in_range(id, D)) pre_activation.row(r) = U.col(id).transpose() + b;
      else pre_activation.row(r) = b;
    }
  } else if (tokens) {
    // Gathered as rows of Uᵀ, contiguous in memory.
    const RowMatrix<S> U_transposed = U.transpose();
    for (Index r = 0; r < rows; ++r) {
      const TokenId id = read_id(tokens, r);
      if (id_in_range(id, D)) pre_activation.row(r) = U_transposed.row(id) + b;
      else pre_activation.row(r) = b;
    }
  } else {
    pre_activation.rowwise() = b;
    const S* const x = dense_rows ? dense_rows : inputs.dense + first * D;
    multiply(pre_activation, matrix_view(x, rows, D, D), U.transpose(), true);
  }
}

// The states buffer before the step loop: h0 (or zeros) in the initial slot and b + U x_t in
// the slots of the times [0, projected_steps), which the loop turns into h_t in place.
template <class S>
void prepare_states(const LayerWeights<S>& weights, const SequenceInput<S>& inputs, const S* h0,
                    S* states, Index projected_steps) {
  const Index B = inputs.batch, H = weights.hidden_size;
  const TimeOrder order{inputs.steps, inputs.reverse};
  MatrixView<S> initial = matrix_view(states + order.initial_slot() * B * H, B, H, H);
  if (h0) initial = matrix_view(h0, B, H, H);
  else initial.setZero();
  if (weights.operands == ProductOperands::bfloat16) round_to_bfloat16(initial);
  project_steps(weights, inputs, 0, projected_steps, states);
}

// Called with k + 1 once the k-th step run is complete on every thread (the loss pipeline
// follows the recurrence by it); by default nothing.
struct NoProgress {
  void operator()(Index) const {}
};

// One per-step product C += A·op(W), shared by the threads of a team (thread_shares.hpp's
// StepShares): by rows, every thread reading one W packed once; or by columns, each thread's
// share of W packed by that thread. Either way the packing is kept for every step loop that
// follows (a team's size could change between parallel regions, its shares with it). Shares
// fall at multiples of the product kernel's register block, so that every value is the same
// bits on any number of threads.
template <class S>
class SharedStepProduct {
 public:
  SharedStepProduct(const S* W, Index hidden_size, WeightUse use, Index rows, Index products)
      : W_(W), H_(hidden_size), use_(use), rows_(rows), products_(products) {}

  // Makes room for a team (outside the team's region: it allocates), packs W for a team that
  // shares by rows, and packs the one share of a team of one at once.
  void prepare(const StepShares& shares) {
    by_rows_ = shares.by_rows;
    if (shares_.size() < size_t(shares.threads)) shares_.resize(size_t(shares.threads));
    if (by_rows_ && !whole_) whole_.emplace(W_, H_, use_, 0, H_, rows_, H_, products_, H_);
    if (shares.threads == 1) share(0, 1);
  }

  // Rows [first_row, last_row) and columns [first, last) of every step.
  struct Share {
    Index first_row = -1, last_row = -1, first = -1, last = -1;
    std::optional<StepProduct<S>> product;
  };

  // Frees the packed shares (packed again on their next use).
  void release() {
    shares_.clear();
    shares_.shrink_to_fit();
    whole_.reset();
  }

  // Thread `thread`'s share in a team of `threads`, made on its first use.
  Share& share(int thread, int threads) {
    Share& share = shares_[size_t(thread)];
    const auto [first_row, last_row] =
        by_rows_ ? row_share(rows_, thread, threads, kProductRowAlignment<S>)
                 : std::pair<Index, Index>{0, rows_};
    const auto [first, last] = by_rows_
                                   ? std::pair<Index, Index>{0, H_}
                                   : column_share(H_, thread, threads, kProductColumnAlignment<S>);
    if (share.first_row != first_row || share.last_row != last_row || share.first != first ||
        share.last != last) {
      if (by_rows_) share.product.emplace(whole_->sharing_weights(last_row - first_row));
      else share.product.emplace(W_, H_, use_, first, last - first, rows_, H_, products_, H_);
      share = Share{first_row, last_row, first, last, std::move(share.product)};
    }
    return share;
  }

 private:
  const S* W_;
  Index H_;
  WeightUse use_;
  Index rows_, products_;
  bool by_rows_ = false;
  std::optional<StepProduct<S>> whole_;  // W packed for every column, when shared by rows
  std::vector<Share> shares_;
};

// Whether a step loop's threads wait for each other after every step: when they share each
// step by columns, and when the caller follows the loop's progress.
template <class Progress>
bool waits_after_each_step(const StepShares& shares, int team) {
  return team > 1 && (!shares.by_rows || !std::is_same_v<std::decay_t<Progress>, NoProgress>);
}

// The step loop of the forward pass: h_t = σ(pre_t + W h_prev), in place in h_t's slot, where
// the slot holds pre_t = b + U x_t; a padded position keeps the previous state. W is packed
// once for all the loops a caller runs (over chunks or segments of the steps). With bfloat16
// operands each h_t is rounded as it is produced.
template <class S>
class ForwardRecurrence {
 public:
  ForwardRecurrence(const S* W, const SequenceInput<S>& inputs, Index hidden_size,
                    Activation activation, ProductOperands operands)
      : inputs_(inputs),
        H_(hidden_size),
        activation_(activation),
        bfloat16_(operands == ProductOperands::bfloat16),
        // W h_prev in row form is h_prev·Wᵀ.
        product_(W, hidden_size, WeightUse::transposed, inputs.batch, inputs.steps) {}

  // The steps run k in [k0, k1) (bptt/state_slots.hpp's order), on a buffer holding the slots
  // from first_slot on; progress(k + 1) after each.
  template <class Progress = NoProgress>
  void run(Index k0, Index k1, S* states, Index first_slot, Progress&& progress = {}) {
    const Index B = inputs_.batch, H = H_;
    const TimeOrder order{inputs_.steps, inputs_.reverse};
    const StepShares shares = recurrence_shares(B, H, sizeof(S));
    product_.prepare(shares);
    on_threads(shares.threads, [&](int thread, int team) {
      auto& share = product_.share(thread, team);
      const Index first = share.first, last = share.last;
      const Index first_row = share.first_row, last_row = share.last_row;
      const bool waits = waits_after_each_step<Progress>(shares, team);
      for (Index k = k0; k < k1; ++k) {
        const Index t = order.time_of(k);
        const S* h_prev = states + (order.previous_slot(t) - first_slot) * B * H;
        S* h = states + (order.state_slot(t) - first_slot) * B * H;
        share.product->accumulate(h_prev + first_row * H, H, h + first_row * H + first, H);
        for (Index b = first_row; b < last_row; ++b) {
          apply_activation_in_row(activation_, h + b * H + first, last - first);
          if (bfloat16_) round_to_bfloat16(h + b * H + first, last - first);
        }
        for (Index b = first_row; b < last_row; ++b) {
          if (is_padding(inputs_.lengths, t, b))
            std::copy(h_prev + b * H + first, h_prev + b * H + last, h + b * H + first);
        }
        if (waits) team_barrier(team);
        if (thread == 0) progress(k + 1);
      }
    });
  }

  // Frees packed W until the next run.
  void release_packing() { product_.release(); }

 private:
  const SequenceInput<S>& inputs_;
  Index H_;
  Activation activation_;
  bool bfloat16_;
  SharedStepProduct<S> product_;
};

// The whole forward step loop on a buffer of every slot.
template <class S, class Progress = NoProgress>
void forward_recurrence(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, S* states, Progress&& progress = {}) {
  ForwardRecurrence<S>(weights.W, inputs, weights.hidden_size, activation, weights.operands)
      .run(0, inputs.steps, states, 0, std::forward<Progress>(progress));
}

// The step loop of the backward pass, in place in the rows of d_pre:
// da_t = (upstream_t + Wᵀ da_next) ⊙ σ'(a_t), where upstream_t is dL/dh_t from outside the
// layer (already in d_pre), plus dL/dh_T at each sequence's last step, and da is zero at padded
// positions. db = Σ da is summed into bias_grad as the loop goes, while each step's rows are in
// cache, or after it where threads share the steps by rows (each thread its own columns, in the
// same order whatever the thread count). W is packed
// once for every chunk of steps a caller runs, last-run chunk first. With bfloat16 operands each
// da_t is rounded as it is produced, before db sums it.
template <class S>
class BackwardRecurrence {
 public:
  // Zeroes bias_grad.
  BackwardRecurrence(const S* W, const SequenceInput<S>& inputs, Index hidden_size,
                     Activation activation, ProductOperands operands, const S* d_h_last,
                     const GradientRows<S>& d_pre, S* bias_grad)
      : inputs_(inputs),
        H_(hidden_size),
        activation_(activation),
        bfloat16_(operands == ProductOperands::bfloat16),
        d_h_last_(d_h_last),
        d_pre_(d_pre),
        bias_grad_(bias_grad),
        // Wᵀ da_next in row form is da_next·W.
        product_(W, hidden_size, WeightUse::as_is, inputs.batch, inputs.steps - 1) {
    RowVectorView<S>(bias_grad, hidden_size).setZero();
    // Packed now, before the first upstream gradient, which a caller may wait for.
    product_.prepare(recurrence_shares(inputs.batch, hidden_size, sizeof(S)));
  }

  // The steps run k from k1 - 1 down to k0; hidden_at(t) is h_t (batch × hidden); progress(n)
  // says that the last n steps run are done.
  template <class StateAt, class Progress = NoProgress>
  void run(Index k0, Index k1, StateAt&& hidden_at, Progress&& progress = {}) {
    const Index B = inputs_.batch, H = H_, T = inputs_.steps, ld = d_pre_.stride;
    const TimeOrder order{T, inputs_.reverse};
    const StepShares shares = recurrence_shares(B, H, sizeof(S));
    product_.prepare(shares);
    on_threads(shares.threads, [&](int thread, int team) {
      auto& share = product_.share(thread, team);
      const Index first = share.first, last = share.last;
      const Index first_row = share.first_row, rows = share.last_row - first_row;
      const bool waits = waits_after_each_step<Progress>(shares, team);
      // db over this thread's columns as the loop goes, or after it, when each thread has only
      // some of a step's rows: either way summed by step, last run first, then by row.
      const bool sums_bias_by_step = rows == B;
      auto add_bias_gradient = [&](Index k, Index first_column, Index last_column) {
        const S* da = d_pre_.at(order.time_of(k));
        RowVectorView<S> db_share(bias_grad_ + first_column, last_column - first_column);
        for (Index b = 0; b < B; ++b)
          db_share += ConstRowVectorView<S>(da + b * ld + first_column, db_share.size());
      };
      for (Index k = k1 - 1; k >= k0; --k) {
        const Index t = order.time_of(k);
        S* da = d_pre_.at(t) + first_row * ld;
        auto da_share = matrix_view(da + first, rows, last - first, ld);
        if (k + 1 < T) {
          const S* da_next = d_pre_.at(order.time_of(k + 1)) + first_row * ld;
          share.product->accumulate(da_next, ld, da + first, ld);
        }
        for (Index r = 0; r < rows; ++r) {
          const Index b = first_row + r;
          const Index length = inputs_.lengths ? inputs_.lengths[b] : T;
          const Index last_time = inputs_.reverse ? 0 : length - 1;
          if (t >= length) {
            da_share.row(r).setZero();
          } else if (d_h_last_ && t == last_time) {
            da_share.row(r) += matrix_view(d_h_last_ + b * H + first, 1, last - first, H);
          }
        }
        const S* h = hidden_at(t) + first_row * H;
        multiply_by_activation_derivative(activation_, da_share,
                                          matrix_view(h + first, rows, last - first, H));
        if (bfloat16_) round_to_bfloat16(da_share);
        if (sums_bias_by_step) add_bias_gradient(k, first, last);
        if (waits) team_barrier(team);
        if (thread == 0) progress(T - k);
      }
      if (!sums_bias_by_step) {
        team_barrier(team);
        const auto [first_column, last_column] = column_share(H, thread, team, 1);
        for (Index k = k1 - 1; k >= k0; --k) add_bias_gradient(k, first_column, last_column);
      }
    });
  }

  // Frees packed W until the next run.
  void release_packing() { product_.release(); }

 private:
  const SequenceInput<S>& inputs_;
  Index H_;
  Activation activation_;
  bool bfloat16_;
  const S* d_h_last_;
  GradientRows<S> d_pre_;
  S* bias_grad_;
  SharedStepProduct<S> product_;
};

// The whole backward step loop, in chunks of chunk_steps from the last step run: the upstream
// gradients are written into d_pre by fill_upstream(t0, t1) for the times [t0, t1) just before
// the loop needs them, and after_chunk(t0, t1) is called once their da is complete; hidden holds
// the hidden states by time.
template <class S, class FillUpstream, class AfterChunk, class Progress = NoProgress>
void backward_recurrence(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                         Activation activation, const S* hidden, const S* d_h_last,
                         Index chunk_steps, FillUpstream&& fill_upstream, AfterChunk&& after_chunk,
                         const GradientRows<S>& d_pre, S* bias_grad, Progress&& progress = {}) {
  const Index B = inputs.batch, H = weights.hidden_size, T = inputs.steps;
  const TimeOrder order{T, inputs.reverse};
  BackwardRecurrence<S> loop(weights.W, inputs, H, activation, weights.operands, d_h_last, d_pre,
                             bias_grad);
  auto hidden_at = [&](Index t) { return hidden + t * B * H; };
  for (Index chunk_end = T; chunk_end > 0; chunk_end -= chunk_steps) {
    const Index chunk_begin = std::max<Index>(0, chunk_end - chunk_steps);
    const Index t0 = std::min(order.time_of(chunk_begin), order.time_of(chunk_end - 1));
    fill_upstream(t0, t0 + (chunk_end - chunk_begin));
    loop.run(chunk_begin, chunk_end, hidden_at, progress);
    after_chunk(t0, t0 + (chunk_end - chunk_begin));
  }
}

// dx_t = Uᵀ da_t for the rows [first, first + da.rows()), when grads.inputs asks for it.
template <class S>
void input_gradient_rows(const LayerWeights<S>& weights, const LayerGradients<S>& grads,
                         Index first, ConstMatrixView<S> da) {
  const Index D = weights.input_size, H = weights.hidden_size;
  if (grads.inputs)
    multiply(matrix_view(grads.inputs + first * D, da.rows(), D, D), da,
             matrix_view(weights.U, H, D, D));
}

// dU = Σ da_t x_tᵀ over rows of pre-activation gradients da, added a block of rows at a time in
// any order (for token inputs a scatter-add into columns of dU, or into rows of dUᵀ, transposed
// once by finish()).
template <class S>
class InputGradientSum {
 public:
  // Zeroes dU; allocates dUᵀ when it is used (so, outside any threaded region).
  InputGradientSum(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                   const LayerGradients<S>& grads)
      : weights_(weights),
        inputs_(inputs),
        grads_(grads),
        scatters_transposed_(inputs.tokens && !reads_token_columns_in_place(
                                                  inputs.steps * inputs.batch, weights.input_size)),
        dU_transposed_(RowMatrix<S>::Zero(scatters_transposed_ ? weights.input_size : 0,
                                          weights.hidden_size)) {
    if (!scatters_transposed_) dU().setZero();
  }

  // The rows [first, first + da.rows()) of the steps·batch rows; dense_rows, if given, holds
  // their dense inputs in place of inputs'.
  void add(Index first, ConstMatrixView<S> da, const S* dense_rows = nullptr) {
    const Index D = weights_.input_size, rows = da.rows();
    if (scatters_transposed_) {
      for (Index r = 0; r < rows; ++r) {
        const TokenId id = read_id(inputs_.tokens, first + r);
        if (id_in_range(id, D)) dU_transposed_.row(id) += da.row(r);
      }
    } else if (inputs_.tokens) {
      for (Index r = 0; r < rows; ++r) {
        const TokenId id = read_id(inputs_.tokens, first + r);
        if (id_in_range(id, D)) dU().col(id) += da.row(r).transpose();
      }
    } else {
      const S* const x = dense_rows ? dense_rows : inputs_.dense + first * D;
      multiply(dU(), da.transpose(), matrix_view(x, rows, D, D), true);
    }
  }

  void finish() {
    if (scatters_transposed_) dU() = dU_transposed_.transpose();
  }

 private:
  MatrixView<S> dU() { return matrix_view(grads_.U, weights_.hidden_size, weights_.input_size, weights_.input_size); }

  const LayerWeights<S>& weights_;
  const SequenceInput<S>& inputs_;
  const LayerGradients<S>& grads_;
  const bool scatters_transposed_;
  RowMatrix<S> dU_transposed_;
};

// dW += Σ_t da_t h_prevᵀ over the times [t0, t1), whose rows of d_pre are da (rows by time in
// either order); h0 null means the zero initial state, hidden holds the states by time.
template <class S>
void add_recurrent_weight_gradient(const SequenceInput<S>& inputs, Index hidden_size,
                                   const S* h0, const S* hidden, Index t0, Index t1,
                                   ConstMatrixView<S> da, MatrixView<S> dW) {
  const Index H = hidden_size, B = inputs.batch, T = inputs.steps;
  // The time whose previous state is h0, and where its rows sit in da.
  const Index h0_time = inputs.reverse ? T - 1 : 0;
  const bool has_h0_time = t0 <= h0_time && h0_time < t1;
  // The other times' previous states are contiguous: those of [t0, t1) without h0's time.
  const Index from_states_t0 = has_h0_time && !inputs.reverse ? t0 + 1 : t0;
  const Index from_states_t1 = has_h0_time && inputs.reverse ? t1 - 1 : t1;
  const Index first_previous = inputs.reverse ? from_states_t0 + 1 : from_states_t0 - 1;
  const S* previous = hidden + first_previous * B * H;
  const Index state_rows = (from_states_t1 - from_states_t0) * B;
  const Index states_at = (from_states_t0 - t0) * B, h0_at = (h0_time - t0) * B;
  // h0 next to the states in the order the rows need them: one product.
  const bool h0_adjacent = has_h0_time && h0 &&
                           (inputs.reverse ? previous + state_rows * H == h0
                                           : h0 + B * H == previous);
  if (h0_adjacent) {
    const S* first_state = inputs.reverse ? previous : h0;
    multiply(dW, da.transpose(), matrix_view(first_state, da.rows(), H, H), true);
    return;
  }
  if (state_rows > 0)
    multiply(dW, da.middleRows(states_at, state_rows).transpose(),
             matrix_view(previous, state_rows, H, H), true);
  if (has_h0_time && h0)
    multiply(dW, da.middleRows(h0_at, B).transpose(), matrix_view(h0, B, H, H), true);
}

// dh0 = Wᵀ da at each sequence's first step, for the sequences whose first step is among the
// times [t0, t1), whose rows are da; finish_initial_state_gradient then gives the empty
// sequences dL/dh_T, which they pass straight on.
template <class S>
void add_initial_state_gradient(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                                Index t0, Index t1, ConstMatrixView<S> da,
                                const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size, B = inputs.batch, T = inputs.steps;
  MatrixView<S> dh0 = matrix_view(grads.h0, B, H, H);
  const ConstMatrixView<S> W = matrix_view(weights.W, H, H, H);
  const Index first_time = inputs.reverse ? T - 1 : 0;
  if ((!inputs.lengths || !inputs.reverse) && t0 <= first_time && first_time < t1) {
    assign_product(dh0, rows_view(da.middleRows((first_time - t0) * B, B)), W);
  }
  if (inputs.lengths && inputs.reverse) {
    for (Index b = 0; b < B; ++b) {
      const Index time = inputs.lengths[b] - 1;
      if (t0 <= time && time < t1)
        assign_product(RowVectorView<S>(grads.h0 + b * H, H),
                       ConstRowVectorView<S>(da.row((time - t0) * B + b).data(), H), W);
    }
  }
}

template <class S>
void finish_initial_state_gradient(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                                   const S* d_h_last, const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size;
  if (!inputs.lengths) return;
  for (Index b = 0; b < inputs.batch; ++b) {
    if (inputs.lengths[b] != 0) continue;
    auto dh0 = matrix_view(grads.h0 + b * H, 1, H, H);
    if (d_h_last) dh0 = matrix_view(d_h_last + b * H, 1, H, H);
    else dh0.setZero();
  }
}

// The gradients of a layer without steps: zeros, and dh0 = dL/dh_T.
template <class S>
void gradients_without_steps(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                             const S* d_h_last, const LayerGradients<S>& grads) {
  const Index D = weights.input_size, H = weights.hidden_size, B = inputs.batch;
  matrix_view(grads.U, H, D, D).setZero();
  matrix_view(grads.W, H, H, H).setZero();
  RowVectorView<S>(grads.b, H).setZero();
  MatrixView<S> dh0 = matrix_view(grads.h0, B, H, H);
  if (d_h_last) dh0 = matrix_view(d_h_last, B, H, H);
  else dh0.setZero();
}

// Whether the layer's passes over `chunks` chunks run on two threads, one following the other a
// chunk apart: when there are two chunks and two threads at least, and the steps are small
// enough to pipeline (steps_pipeline: sharing each would cost more than it saves).
inline bool pipelines_chunks(Index chunks, Index batch, Index hidden_size) {
  return chunks >= 2 && free_threads() >= 2 && steps_pipeline(batch, hidden_size);
}

// The backward pass with the upstream gradient supplied chunk by chunk (see backward_recurrence),
// in the caller's rows d_pre (a ring must be of chunk_steps). dW, dU, dx and dh0 are taken from
// each chunk's da as soon as it is complete, while its rows (and the states and inputs of its
// times) are still in cache; db as the loop goes.
//
// On two threads, when the chunks pipeline (pipelines_chunks), the loop runs on the first, which
// takes each chunk's dx after its steps, and the second takes the chunk's dW, dU and dh0 behind
// it, in the same order and by the same products: the same bits as on one thread. With dense
// inputs each thread then does (H + D)/H times the work of the steps (dW costs what the steps
// cost, dx and dU each D/H of it). A slot of a ring of chunks is refilled only once both are
// done with the chunk it held.
template <class S, class FillUpstream>
void recurrent_backward_into(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                             Activation activation, const S* h0, const S* hidden,
                             const S* d_h_last, Index chunk_steps, FillUpstream&& fill_upstream,
                             const GradientRows<S>& d_pre, const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size, B = inputs.batch, T = inputs.steps, N = T * B;
  if (N == 0) {
    gradients_without_steps(weights, inputs, d_h_last, grads);
    return;
  }
  MatrixView<S> dW = matrix_view(grads.W, H, H, H);
  dW.setZero();
  InputGradientSum<S> input_side(weights, inputs, grads);
  auto chunk_rows_of = [&](Index t0, Index t1) {
    return matrix_view(static_cast<const S*>(d_pre.at(t0)), (t1 - t0) * B, H, d_pre.stride);
  };
  auto chunk_sums = [&](Index t0, Index t1) {  // dW, dU and dh0
    const auto da = chunk_rows_of(t0, t1);
    add_recurrent_weight_gradient(inputs, H, h0, hidden, t0, t1, da, dW);
    input_side.add(t0 * B, da);
    add_initial_state_gradient(weights, inputs, t0, t1, da, grads);
  };
  auto chunk_input_rows = [&](Index t0, Index t1) {  // dx
    input_gradient_rows(weights, grads, t0 * B, chunk_rows_of(t0, t1));
  };
  auto run_in_turn = [&] {
    auto chunk_gradients = [&](Index t0, Index t1) {
      chunk_sums(t0, t1);
      chunk_input_rows(t0, t1);
    };
    backward_recurrence(weights, inputs, activation, hidden, d_h_last, chunk_steps,
                        fill_upstream, chunk_gradients, d_pre, grads.b);
  };
  const Index chunks = chunk_count(T, chunk_steps);
  if (!pipelines_chunks(chunks, B, H)) {
    run_in_turn();
  } else {
    std::vector<std::pair<Index, Index>> times(static_cast<std::size_t>(chunks));
    StepCounter looped, summed;  // chunks whose da is complete, whose gradients are taken
    on_threads(2, [&](int thread, int threads) {
      if (threads == 1) {  // no second thread to be had
        run_in_turn();
      } else if (thread == 0) {
        Index k = 0;
        auto fill_when_free = [&](Index t0, Index t1) {
          // chunk k's slot in a ring, chunk k - ring_chunks's before, is free
          if (d_pre.ring_chunk_steps) summed.wait_for(k - d_pre.ring_chunks + 1);
          fill_upstream(t0, t1);
        };
        auto hand_over = [&](Index t0, Index t1) {
          times[static_cast<std::size_t>(k)] = {t0, t1};
          looped.publish(++k);
          chunk_input_rows(t0, t1);
        };
        backward_recurrence(weights, inputs, activation, hidden, d_h_last, chunk_steps,
                            fill_when_free, hand_over, d_pre, grads.b);
      } else {
        for (Index k = 0; k < chunks; ++k) {
          looped.wait_for(k + 1);
          const auto [t0, t1] = times[static_cast<std::size_t>(k)];
          chunk_sums(t0, t1);
          summed.publish(k + 1);
        }
      }
    });
  }
  input_side.finish();
  finish_initial_state_gradient(weights, inputs, d_h_last, grads);
}

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
