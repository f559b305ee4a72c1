// Shared vocabulary of the core: index type, matrix views over caller-owned memory, and the
// per-instruction-set namespace.
#pragma once

#include <Eigen/Core>

#include <cstdint>

// Every translation unit of one kernel build is compiled with the same -m flags and the same
// BPTT_ISA_NAMESPACE, so Eigen templates instantiated for one instruction set can never be merged
// by the linker with another set's copies.
#ifndef BPTT_ISA_NAMESPACE
#define BPTT_ISA_NAMESPACE isa_native
#endif

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

using Index = Eigen::Index;
using TokenId = std::int64_t;

template <class S>
using RowMatrix = Eigen::Matrix<S, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class S>
using RowVector = Eigen::Matrix<S, 1, Eigen::Dynamic>;

// Row-major views with an explicit row stride, so that one buffer can hold rows narrower than it.
template <class S>
using MatrixView = Eigen::Map<RowMatrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class S>
using ConstMatrixView = Eigen::Map<const RowMatrix<S>, Eigen::Unaligned, Eigen::OuterStride<>>;
template <class S>
using RowVectorView = Eigen::Map<RowVector<S>>;
template <class S>
using ConstRowVectorView = Eigen::Map<const RowVector<S>>;

template <class S>
MatrixView<S> matrix_view(S* data, Index rows, Index cols, Index row_stride) {
  return MatrixView<S>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}
template <class S>
ConstMatrixView<S> matrix_view(const S* data, Index rows, Index cols, Index row_stride) {
  return ConstMatrixView<S>(data, rows, cols, Eigen::OuterStride<>(row_stride));
}

enum class Activation { tanh, sigmoid, relu, identity };
enum class Reduction { sum, mean };

// Parameters of the recurrent layer a_t = b + W h_{t-1} + U x_t, row-major like NumPy's default.
template <class S>
struct LayerWeights {
  const S* U;  // (hidden_size, input_size)
  const S* W;  // (hidden_size, hidden_size)
  const S* b;  // (hidden_size)
  Index input_size;
  Index hidden_size;
};

// Parameters of the softmax head o_t = c + V h_t.
template <class S>
struct HeadWeights {
  const S* V;  // (output_size, hidden_size)
  const S* c;  // (output_size)
  Index hidden_size;
  Index output_size;
};

// A batch of sequences, time-major: either dense vectors x_t or token ids meaning one-hot x_t.
// With lengths, sequence b has lengths[b] <= steps steps; its later positions are padding that
// is never read: its state stays as it was (h_T of the sequence is its last real state) and
// gradients at padded positions are ignored. With reverse, the recurrence runs from the last
// step of each sequence to the first, as the backward half of a bidirectional RNN does.
template <class S>
struct SequenceInput {
  Index steps;
  Index batch;
  const S* dense = nullptr;         // (steps, batch, input_size)
  const TokenId* tokens = nullptr;  // (steps, batch), each in [0, input_size)
  const Index* lengths = nullptr;   // (batch), each in [0, steps]; null: every sequence is full
  bool reverse = false;
};

// Per-step targets: class ids (-1 = no loss at that step) or soft target vectors y_t.
template <class S>
struct Targets {
  const TokenId* ids = nullptr;  // (steps, batch)
  const S* soft = nullptr;       // (steps, batch, output_size)
};

// Gradients written (not accumulated) by the recurrent layer's backward pass.
template <class S>
struct LayerGradients {
  S* U;
  S* W;
  S* b;
  S* h0;                // (batch, hidden_size)
  S* inputs = nullptr;  // (steps, batch, input_size); only for dense inputs, may be null
};

template <class S>
struct HeadGradients {
  S* V;
  S* c;
};

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
