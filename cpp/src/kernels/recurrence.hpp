// The recurrent layer's kernels a_t = b + W h_{t-1} + U x_t, h_t = σ(a_t), piece by piece: the
// input projection, the forward and backward step loops and the gradients taken from chunks of
// the backward loop's rows, which the layer on its own (recurrent_layer.cpp) and the whole
// model (rnn_loss.cpp, rnn_loss_pipeline.cpp) compose. The storage of the states is described at
// the public bptt/recurrent_layer.hpp.
#pragma once

#include "activation.hpp"
#include "bptt/state_slots.hpp"
#include "chunks.hpp"
#include "matrix_views.hpp"
#include "parallel_product.hpp"
#include "step_product.hpp"
#include "team.hpp"

#include <algorithm>
#include <optional>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {

namespace detail {

// Where the pre-activation gradients da of each time step live in the backward pass: all steps'
// rows in one buffer (rows t·batch .. for time t), or, with ring_chunk_steps > 0, a ring of two
// chunks of that many steps, the backward loop's current chunk and the one before it, which is
// all that the loop and the per-chunk gradients read (a chunk's times are consecutive, and so
// are its rows).
template <class S>
struct GradientRows {
  S* data;
  Index stride;  // between rows, >= hidden_size
  Index batch;
  TimeOrder order;
  Index ring_chunk_steps = 0;

  S* at(Index t) const {
    if (ring_chunk_steps == 0) return data + t * batch * stride;
    // Chunks are counted from the last step run, as the backward loop visits them.
    const Index run = order.reverse ? order.steps - 1 - t : t;
    const Index chunk = (order.steps - 1 - run) / ring_chunk_steps;
    const Index chunk_end = order.steps - chunk * ring_chunk_steps;
    const Index chunk_begin = std::max<Index>(0, chunk_end - ring_chunk_steps);
    const Index first_time = std::min(order.time_of(chunk_begin), order.time_of(chunk_end - 1));
    return data + ((chunk % 2) * ring_chunk_steps + t - first_time) * batch * stride;
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

// b + U x_t for the times [t0, t1), in their slots of the states buffer (rows are by time in
// either order): one GEMM for dense inputs, a row gather for tokens.
template <class S>
void project_steps(const LayerWeights<S>& weights, const SequenceInput<S>& inputs, Index t0,
                   Index t1, S* states) {
  const Index D = weights.input_size, H = weights.hidden_size, B = inputs.batch;
  const Index first = t0 * B, rows = (t1 - t0) * B;
  if (rows <= 0) return;
  const TimeOrder order{inputs.steps, inputs.reverse};
  MatrixView<S> pre_activation =
      matrix_view(states + (order.first_state_slot() * B + first) * H, rows, H, H);
  const ConstMatrixView<S> U = matrix_view(weights.U, H, D, D);
  const ConstRowVectorView<S> b(weights.b, H);
  const Index* tokens = inputs.tokens ? inputs.tokens + first : nullptr;
  if (tokens && reads_token_columns_in_place(inputs.steps * B, D)) {
    // U x_t with a one-hot x_t is column x_t of U.
    for (Index r = 0; r < rows; ++r) pre_activation.row(r) = U.col(tokens[r]).transpose() + b;
  } else if (tokens) {
    // Gathered as rows of Uᵀ, contiguous in memory.
    const RowMatrix<S> U_transposed = U.transpose();
    for (Index r = 0; r < rows; ++r) pre_activation.row(r) = U_transposed.row(tokens[r]) + b;
  } else {
    pre_activation.rowwise() = b;
    multiply(pre_activation, matrix_view(inputs.dense + first * D, rows, D, D), U.transpose(),
             true);
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
  project_steps(weights, inputs, 0, projected_steps, states);
}

// Called with k + 1 once the k-th step run is complete on every thread (the loss pipeline
// follows the recurrence by it); by default nothing.
struct NoProgress {
  void operator()(Index) const {}
};

// The step loop of the forward pass: h_t = σ(pre_t + W h_prev), in place in h_t's slot; a
// padded position keeps the previous state.
template <class S, class Progress = NoProgress>
void forward_recurrence(const S* W, const SequenceInput<S>& inputs, Index hidden_size,
                        Activation activation, S* states, Progress&& progress = {}) {
  const Index B = inputs.batch, H = hidden_size;
  const TimeOrder order{inputs.steps, inputs.reverse};
  on_threads(recurrence_threads(B, H), [&](int thread, int threads) {
    const auto [first, last] = column_share(H, thread, threads);
    // W h_prev in row form is h_prev·Wᵀ.
    StepProduct<S> product(W, H, WeightUse::transposed, first, last - first, B, H, inputs.steps);
    for (Index k = 0; k < inputs.steps; ++k) {
      const Index t = order.time_of(k);
      const S* h_prev = states + order.previous_slot(t) * B * H;
      S* h = states + order.state_slot(t) * B * H;
      product.accumulate(h_prev, H, h + first, H);
      for (Index b = 0; b < B; ++b)
        apply_activation_in_row(activation, h + b * H + first, last - first);
      for (Index b = 0; b < B; ++b) {
        if (is_padding(inputs.lengths, t, b))
          std::copy(h_prev + b * H + first, h_prev + b * H + last, h + b * H + first);
      }
      team_barrier(threads);
      if (thread == 0) progress(k + 1);
    }
  });
}

// The step loop of the backward pass, in place in the rows of d_pre:
// da_t = (upstream_t + Wᵀ da_next) ⊙ σ'(a_t), where upstream_t is dL/dh_t from outside the
// layer, plus dL/dh_T at each sequence's last step, and da is zero at padded positions. The
// upstream gradients are written into d_pre by fill_upstream(t0, t1) for the times [t0, t1)
// just before the loop needs them, chunk by chunk in the loop's order, and after_chunk(t0, t1)
// is called once their da is complete. db = Σ da is summed into bias_grad as the loop goes,
// while each step's rows are in cache (each thread its own columns, in the same order whatever
// the thread count). progress(n) says that the last n steps run are done.
template <class S, class FillUpstream, class AfterChunk, class Progress = NoProgress>
void backward_recurrence(const S* W, const SequenceInput<S>& inputs, Index hidden_size,
                         Activation activation, const S* hidden, const S* d_h_last,
                         Index chunk_steps, FillUpstream&& fill_upstream, AfterChunk&& after_chunk,
                         const GradientRows<S>& d_pre, S* bias_grad, Progress&& progress = {}) {
  const Index B = inputs.batch, H = hidden_size, T = inputs.steps, ld = d_pre.stride;
  const TimeOrder order{T, inputs.reverse};
  RowVectorView<S>(bias_grad, H).setZero();
  const int threads = recurrence_threads(B, H);
  // Each thread's share of W, packed once for all the chunks (a team's size could change
  // between regions, its shares with it).
  struct PackedShare {
    Index first = -1, last = -1;
    std::optional<StepProduct<S>> product;
  };
  std::vector<PackedShare> shares(size_t(std::max(1, threads)));
  if (threads <= 1) {  // packed before the first upstream, which a caller may wait for
    shares[0].product.emplace(W, H, WeightUse::as_is, 0, H, B, H, T - 1);
    shares[0].first = 0;
    shares[0].last = H;
  }
  // The steps are visited last-run first: k = T - 1 down to 0, in chunks.
  for (Index chunk_end = T; chunk_end > 0; chunk_end -= chunk_steps) {
    const Index chunk_begin = std::max<Index>(0, chunk_end - chunk_steps);
    const Index t0 = std::min(order.time_of(chunk_begin), order.time_of(chunk_end - 1));
    fill_upstream(t0, t0 + (chunk_end - chunk_begin));
    on_threads(threads, [&](int thread, int team) {
      const auto [first, last] = column_share(H, thread, team);
      PackedShare& share = shares[size_t(thread)];
      if (share.first != first || share.last != last) {
        // Wᵀ da_next in row form is da_next·W.
        share.product.emplace(W, H, WeightUse::as_is, first, last - first, B, H, T - 1);
        share.first = first;
        share.last = last;
      }
      StepProduct<S>& product = *share.product;
      for (Index k = chunk_end - 1; k >= chunk_begin; --k) {
        const Index t = order.time_of(k);
        S* da = d_pre.at(t);
        auto da_share = matrix_view(da + first, B, last - first, ld);
        if (k + 1 < T) {
          const S* da_next = d_pre.at(order.time_of(k + 1));
          product.accumulate(da_next, ld, da + first, ld);
        }
        for (Index b = 0; b < B; ++b) {
          const Index length = inputs.lengths ? inputs.lengths[b] : T;
          const Index last_time = inputs.reverse ? 0 : length - 1;
          if (t >= length) {
            da_share.row(b).setZero();
          } else if (d_h_last && t == last_time) {
            da_share.row(b) += matrix_view(d_h_last + b * H + first, 1, last - first, H);
          }
        }
        multiply_by_activation_derivative(
            activation, da_share, matrix_view(hidden + t * B * H + first, B, last - first, H));
        RowVectorView<S> db_share(bias_grad + first, last - first);
        for (Index b = 0; b < B; ++b) db_share += da_share.row(b);
        team_barrier(team);
        if (thread == 0) progress(T - k);
      }
    });
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

  // The rows [first, first + da.rows()) of the steps·batch rows.
  void add(Index first, ConstMatrixView<S> da) {
    const Index D = weights_.input_size, rows = da.rows();
    if (scatters_transposed_) {
      for (Index r = 0; r < rows; ++r) dU_transposed_.row(inputs_.tokens[first + r]) += da.row(r);
    } else if (inputs_.tokens) {
      for (Index r = 0; r < rows; ++r) dU().col(inputs_.tokens[first + r]) += da.row(r).transpose();
    } else {
      multiply(dU(), da.transpose(), matrix_view(inputs_.dense + first * D, rows, D, D), true);
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
    dh0.noalias() = da.middleRows((first_time - t0) * B, B) * W;
  }
  if (inputs.lengths && inputs.reverse) {
    for (Index b = 0; b < B; ++b) {
      const Index time = inputs.lengths[b] - 1;
      if (t0 <= time && time < t1) dh0.row(b).noalias() = da.row((time - t0) * B + b) * W;
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

// The backward pass with the upstream gradient supplied chunk by chunk (see backward_recurrence),
// in the caller's rows d_pre (a ring must be of chunk_steps). dW, dU, dx and dh0 are taken from
// each chunk's da as soon as it is complete, while its rows (and the states and inputs of its
// times) are still in cache; db as the loop goes.
template <class S, class FillUpstream>
void recurrent_backward_into(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                             Activation activation, const S* h0, const S* hidden,
                             const S* d_h_last, Index chunk_steps, FillUpstream&& fill_upstream,
                             const GradientRows<S>& d_pre, const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size, B = inputs.batch, N = inputs.steps * B;
  if (N == 0) {
    gradients_without_steps(weights, inputs, d_h_last, grads);
    return;
  }
  MatrixView<S> dW = matrix_view(grads.W, H, H, H);
  dW.setZero();
  InputGradientSum<S> input_side(weights, inputs, grads);
  auto chunk_gradients = [&](Index t0, Index t1) {
    const auto da = matrix_view(static_cast<const S*>(d_pre.at(t0)), (t1 - t0) * B, H,
                                d_pre.stride);
    add_recurrent_weight_gradient(inputs, H, h0, hidden, t0, t1, da, dW);
    input_side.add(t0 * B, da);
    input_gradient_rows(weights, grads, t0 * B, da);
    add_initial_state_gradient(weights, inputs, t0, t1, da, grads);
  };
  backward_recurrence(weights.W, inputs, H, activation, hidden, d_h_last, chunk_steps,
                      fill_upstream, chunk_gradients, d_pre, grads.b);
  input_side.finish();
  finish_initial_state_gradient(weights, inputs, d_h_last, grads);
}

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
