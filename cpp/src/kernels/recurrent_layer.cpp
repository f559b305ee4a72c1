// The recurrent layer on its own (bptt/recurrent_layer.hpp): the forward pass, and the backward
// pass from the caller's dL/dh_t, copied chunk by chunk into a ring of two chunks of da.
#include "bfloat16.hpp"
#include "entry_points.hpp"
#include "handoff.hpp"
#include "recurrence.hpp"
#include "scalars.hpp"

#include "../workspace.hpp"

#include <algorithm>
#include <optional>
#include <utility>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

// With bfloat16 operands (bfloat16.hpp), U, W and dense inputs rounded into copies, and `states`
// more buffers of the given sizes (the hidden states and h0 that backward reads) likewise.
template <class S>
struct LayerOperands {
  LayerWeights<S> weights;
  SequenceInput<S> inputs;
  std::optional<Workspace> workspace;

  LayerOperands(const LayerWeights<S>& given, const SequenceInput<S>& given_inputs,
                std::initializer_list<std::pair<const S**, Index>> states = {})
      : weights(given), inputs(given_inputs) {
    if (given.operands != ProductOperands::bfloat16) return;
    const Index D = given.input_size, H = given.hidden_size;
    const Index dense = given_inputs.dense ? given_inputs.steps * given_inputs.batch * D : 0;
    std::size_t bytes = Workspace::bytes_for({std::size_t(H * D) * sizeof(S),
                                              std::size_t(H * H) * sizeof(S),
                                              std::size_t(dense) * sizeof(S)});
    for (const auto& [values, count] : states)
      bytes += Workspace::bytes_for({std::size_t(count) * sizeof(S)});
    workspace.emplace(bytes);
    weights = rounded_layer(given, *workspace);
    inputs = rounded_inputs(given_inputs, D, *workspace);
    for (const auto& [values, count] : states) {
      if (!*values) continue;
      S* const rounded = workspace->take<S>(std::size_t(count));
      rounded_copy(*values, count, rounded);
      *values = rounded;
    }
  }
};

}  // namespace

// On two threads, when the chunks pipeline (detail::pipelines_chunks), the forward pass projects
// the inputs (b + U x_t) on the second thread a chunk of steps ahead of the step loop on the
// first.
// The chunks' projections are the same bits as the whole sequence's when the rows are gathered
// from U (token inputs), or when every chunk's product takes Eigen's blocked kernel as the whole
// one does (not its coefficient-wise product, below EIGEN_GEMM_TO_COEFFBASED_THRESHOLD, nor its
// matrix-vector one) and the chunks' rows meet at multiples of its register block
// (parallel_product.hpp): chunk_steps·batch rows a chunk, counted from time 0 in either order.
template <class S>
bool projects_ahead(const SequenceInput<S>& inputs, Index input_size, Index hidden_size,
                    Index chunk_steps) {
  const Index T = inputs.steps, B = inputs.batch;
  const Index chunks = chunk_count(T, chunk_steps);
  if (!detail::pipelines_chunks(chunks, B, hidden_size)) return false;
  if (inputs.tokens) return true;
  const Index fewest_rows = std::min(chunk_steps, T - (chunks - 1) * chunk_steps) * B;
  return chunk_steps * B % kProductRowAlignment<S> == 0 && fewest_rows > 1 && hidden_size > 1 &&
         fewest_rows + hidden_size + input_size >= EIGEN_GEMM_TO_COEFFBASED_THRESHOLD;
}

template <class S>
void recurrent_forward(const LayerWeights<S>& given_weights, const SequenceInput<S>& given_inputs,
                       const S* h0, Activation activation, S* states) {
  const LayerOperands<S> operands(given_weights, given_inputs);
  const LayerWeights<S>& weights = operands.weights;
  const SequenceInput<S>& inputs = operands.inputs;
  const Index T = inputs.steps, B = inputs.batch, H = weights.hidden_size;
  const Index chunk_steps = steps_per_chunk(chunk_rows(H), B, T);
  if (T * B == 0 || !projects_ahead(inputs, weights.input_size, H, chunk_steps)) {
    detail::prepare_states(weights, inputs, h0, states, T);
    if (T * B > 0) detail::forward_recurrence(weights, inputs, activation, states);
    return;
  }
  detail::prepare_states(weights, inputs, h0, states, 0);
  detail::ForwardRecurrence<S> loop(weights.W, inputs, H, activation, weights.operands);
  const TimeOrder order{T, inputs.reverse};
  const Index chunks = chunk_count(T, chunk_steps);
  // Chunk j's steps run, k in [first, last). Its times are counted from time 0 in either
  // order, so that the chunks' rows meet at multiples of chunk_steps·batch, where
  // projects_ahead checks the product's blocks fall: reversed, the first chunk run is the
  // short one at the top.
  auto run_range = [&](Index j) {
    const Index chunk = inputs.reverse ? chunks - 1 - j : j;
    const Index t0 = chunk * chunk_steps, t1 = std::min(T, t0 + chunk_steps);
    if (!inputs.reverse) return std::pair<Index, Index>{t0, t1};
    return std::pair<Index, Index>{T - t1, T - t0};
  };
  auto project = [&](Index j) {
    const auto [first, last] = run_range(j);
    const Index t0 = std::min(order.time_of(first), order.time_of(last - 1));
    detail::project_steps(weights, inputs, t0, t0 + (last - first), states);
  };
  detail::StepCounter projected;
  on_threads(2, [&](int thread, int threads) {
    for (Index j = 0; j < chunks; ++j) {
      if (threads == 1) project(j);  // no second thread to be had: in turn
      if (thread == 1) {
        project(j);
        projected.publish(j + 1);
      } else {
        if (threads > 1) projected.wait_for(j + 1);
        const auto [first, last] = run_range(j);
        loop.run(first, last, states, 0);
      }
    }
  });
}

template <class S>
void recurrent_backward(const LayerWeights<S>& given_weights, const SequenceInput<S>& given_inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads) {
  const Index H = given_weights.hidden_size, B = given_inputs.batch, T = given_inputs.steps;
  const LayerOperands<S> operands(given_weights, given_inputs,
                                  {{&h0, B * H}, {&hidden, T * B * H}});
  const LayerWeights<S>& weights = operands.weights;
  const SequenceInput<S>& inputs = operands.inputs;
  const Index chunk_steps = steps_per_chunk(chunk_rows(H), B, T);
  // da lives in a ring of two chunks: dL/dh of a chunk is copied in just before the loop runs it.
  const Index ring_rows = std::min(T, 2 * chunk_steps) * B;
  Workspace workspace(Workspace::bytes_for({std::size_t(ring_rows * H) * sizeof(S)}));
  const detail::GradientRows<S> d_pre{workspace.take<S>(std::size_t(ring_rows * H)), H, B,
                                      TimeOrder{T, inputs.reverse}, chunk_steps};
  auto copy_upstream = [&](Index t0, Index t1) {
    MatrixView<S> rows = matrix_view(d_pre.at(t0), (t1 - t0) * B, H, H);
    if (d_hidden) rows = matrix_view(d_hidden + t0 * B * H, rows.rows(), H, H);
    else rows.setZero();
  };
  detail::recurrent_backward_into(weights, inputs, activation, h0, hidden, d_h_last, chunk_steps,
                                  copy_upstream, d_pre, grads);
}

#define BPTT_INSTANTIATE(S)                                                                 \
  template void recurrent_forward<S>(const LayerWeights<S>&, const SequenceInput<S>&,       \
                                     const S*, Activation, S*);                             \
  template void recurrent_backward<S>(const LayerWeights<S>&, const SequenceInput<S>&,      \
                                      Activation, const S*, const S*, const S*, const S*,   \
                                      const LayerGradients<S>&);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
