// The recurrent layer on its own (bptt/recurrent_layer.hpp): the forward pass, and the backward
// pass from the caller's dL/dh_t, copied chunk by chunk into a ring of two chunks of da.
#include "entry_points.hpp"
#include "recurrence.hpp"

#include "../workspace.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
void recurrent_forward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                       const S* h0, Activation activation, S* states) {
  detail::prepare_states(weights, inputs, h0, states, inputs.steps);
  if (inputs.steps * inputs.batch > 0)
    detail::forward_recurrence(weights.W, inputs, weights.hidden_size, activation, states);
}

template <class S>
void recurrent_backward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads) {
  const Index H = weights.hidden_size, B = inputs.batch, T = inputs.steps;
  const Index chunk_steps = steps_per_chunk(kChunkRows, B, T);
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
BPTT_INSTANTIATE(float)
BPTT_INSTANTIATE(double)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
