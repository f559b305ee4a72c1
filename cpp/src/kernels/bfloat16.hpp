// bfloat16 product operands (bptt/types.hpp's ProductOperands::bfloat16) on any CPU: each operand
// rounded to bfloat16 and held in a float, whose low 16 bits are then zero, so that the float
// products and their float sums (FMA) are what a bfloat16 dot-product instruction with float
// accumulation computes, up to the order of the sums. The rule, once: U, W and V are rounded once
// a call, dense inputs as the products read them; h0 and each h_t as it is produced (the rounded
// h_t is what the next step, the head, σ' and dW read); dO and da as they are produced (the
// rounded values are what dL/dh = dO V, Wᵀ da, dV, dW, dU, dx, dh0 and the bias gradients' sums
// read); every sum is float.
// The whole model keeps its hidden states as bfloat16 (2 bytes each), converted to floats a
// chunk at a time for the products (chunked_loss.hpp).
#pragma once

#include "matrix_views.hpp"

#include "../workspace.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace bptt::BPTT_ISA_NAMESPACE {

// Round-to-nearest-even to bfloat16's 8 significant bits; a NaN stays a (quiet) NaN and an
// infinity an infinity; finite values beyond bfloat16's largest round to infinity.
inline float round_to_bfloat16(float x) {
  std::uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const bool nan = (bits & 0x7FFFFFFFu) > 0x7F800000u;
  const std::uint32_t rounded = nan ? bits | 0x00400000u : bits + 0x7FFFu + ((bits >> 16) & 1u);
  const std::uint32_t kept = rounded & 0xFFFF0000u;
  float result;
  std::memcpy(&result, &kept, sizeof result);
  return result;
}

// A stored hidden state: the upper 16 bits of a float already rounded to bfloat16.
struct Bfloat16 {
  std::uint16_t bits;
};

// n states from floats to their storage (State: S itself, or Bfloat16 for float states, which
// are bfloat16 values already, so that dropping their low bits loses nothing), and back.
template <class S, class State>
void store_states(const S* from, Index n, State* to) {
  if constexpr (std::is_same_v<State, S>) {
    std::copy_n(from, n, to);
  } else {
    for (Index i = 0; i < n; ++i) {
      std::uint32_t bits;
      std::memcpy(&bits, from + i, sizeof bits);
      to[i].bits = std::uint16_t(bits >> 16);
    }
  }
}

template <class S, class State>
void load_states(const State* from, Index n, S* to) {
  if constexpr (std::is_same_v<State, S>) {
    std::copy_n(from, n, to);
  } else {
    for (Index i = 0; i < n; ++i) {
      const std::uint32_t bits = std::uint32_t(from[i].bits) << 16;
      std::memcpy(to + i, &bits, sizeof bits);
    }
  }
}

// In place, each of n contiguous values. Only float values are ever rounded (the bindings take
// bfloat16 operands with float parameters alone): for double this does nothing.
template <class S>
void round_to_bfloat16(S* values, Index n) {
  if constexpr (std::is_same_v<S, float>) {
    for (Index i = 0; i < n; ++i) values[i] = round_to_bfloat16(values[i]);
  }
}

// In place, each value of a block of rows.
template <class S>
void round_to_bfloat16(MatrixView<S> block) {
  for (Index r = 0; r < block.rows(); ++r)
    round_to_bfloat16(block.data() + r * block.outerStride(), block.cols());
}

// A copy of n values, rounded, into `to`.
template <class S>
void rounded_copy(const S* from, Index n, S* to) {
  std::copy_n(from, n, to);
  round_to_bfloat16(to, n);
}

// The operands a call rounds once, each into a copy taken from the call's workspace (in the
// order of bfloat16_weight_bytes, loss_plan.hpp, for the whole model): U and W, V, and, for the
// layer on its own, the dense inputs (the whole model rounds them a chunk at a time).
template <class S>
LayerWeights<S> rounded_layer(const LayerWeights<S>& weights, Workspace& workspace) {
  const Index D = weights.input_size, H = weights.hidden_size;
  LayerWeights<S> rounded = weights;
  S* const U = workspace.take<S>(std::size_t(H * D));
  S* const W = workspace.take<S>(std::size_t(H * H));
  rounded_copy(weights.U, H * D, U);
  rounded_copy(weights.W, H * H, W);
  rounded.U = U;
  rounded.W = W;
  return rounded;
}

template <class S>
HeadWeights<S> rounded_head(const HeadWeights<S>& weights, Workspace& workspace) {
  const Index count = weights.output_size * weights.hidden_size;
  HeadWeights<S> rounded = weights;
  S* const V = workspace.take<S>(std::size_t(count));
  rounded_copy(weights.V, count, V);
  rounded.V = V;
  return rounded;
}

template <class S>
SequenceInput<S> rounded_inputs(const SequenceInput<S>& inputs, Index input_size,
                                Workspace& workspace) {
  SequenceInput<S> rounded = inputs;
  if (!inputs.dense) return rounded;  // one-hot inputs are exact in bfloat16
  const Index count = inputs.steps * inputs.batch * input_size;
  S* const dense = workspace.take<S>(std::size_t(count));
  rounded_copy(inputs.dense, count, dense);
  rounded.dense = dense;
  return rounded;
}

}  // namespace bptt::BPTT_ISA_NAMESPACE
