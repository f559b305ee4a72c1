// Shared vocabulary of the core's API: sizes, the model's options, and views of caller-owned
// memory for the parameters, the sequences, the targets and the gradients. Row-major, like
// NumPy's default; nothing here allocates.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace bptt {

using Index = std::ptrdiff_t;
using TokenId = std::int64_t;

enum class Activation { tanh, sigmoid, relu, identity };
enum class Reduction { sum, mean };

// The operands of the products (matrix by matrix or by vector): the scalar type's own, or
// rounded to bfloat16 (float parameters only), which the products then accumulate in float:
// U, W, V and dense inputs rounded once a call, each hidden state (h0 too) as it is produced,
// and each gradient that is a product's operand (dO = dL/do, da = dL/da) as it is produced,
// all round-to-nearest-even. Biases, the softmax and the loss are float; σ'(a_t) is taken from
// the rounded h_t; db and dc sum the rounded da and dO in float; every gradient returned is
// float. The kernels hold the rounded values in float (kernels/bfloat16.hpp).
enum class ProductOperands { native, bfloat16 };

// "tanh", "sigmoid", "relu", "identity" / "sum", "mean"; false for any other name.
bool parse_activation(std::string_view name, Activation& out);
bool parse_reduction(std::string_view name, Reduction& out);

// Parameters of the recurrent layer a_t = b + W h_{t-1} + U x_t.
template <class S>
struct LayerWeights {
  const S* U;  // (hidden_size, input_size)
  const S* W;  // (hidden_size, hidden_size)
  const S* b;  // (hidden_size)
  Index input_size;
  Index hidden_size;
  ProductOperands operands = ProductOperands::native;
};

// Parameters of the softmax head o_t = c + V h_t.
template <class S>
struct HeadWeights {
  const S* V;  // (output_size, hidden_size)
  const S* c;  // (output_size)
  Index hidden_size;
  Index output_size;
  ProductOperands operands = ProductOperands::native;
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

// The sizes of one call of the whole model.
struct ProblemSize {
  Index steps, batch, input_size, hidden_size, output_size;
};

// Work a caller wants done on the finished gradients by a team of threads: run(thread, threads,
// L) is called by every thread of a team once L and every gradient are written. The team is
// the one that computed them when the call ran on two threads (so that each thread finds in its
// own cache the gradients it wrote), or else a new team of up to max_threads threads.
struct GradientsDone {
  std::function<void(int thread, int threads, double loss)> run;
  int max_threads = 1;
};

}  // namespace bptt
