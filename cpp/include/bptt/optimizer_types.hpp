// The optimizers' settings and states as the core takes them (bptt/optimizer_steps.hpp and
// bptt/training_step.hpp): torch.optim's Adam, Adagrad and SGD with momentum.
#pragma once

#include "bptt/types.hpp"

#include <cmath>
#include <cstdint>

namespace bptt {

// One Adam step's scalars (see adam_step), each rounded once from its exact (double) value, as
// torch and NumPy round them.
template <class S>
struct AdamStep {
  S one_minus_beta1, beta2, one_minus_beta2, step_size, bias_correction2_sqrt, eps;
};

// torch.optim.Adam's bias corrections for update number `step` (from 1): step_size =
// lr / (1 − β1^t) and bias_correction2_sqrt = √(1 − β2^t), each computed in double (C's pow is
// Python's **) and rounded once.
template <class S>
AdamStep<S> adam_step_scalars(double lr, double beta1, double beta2, double eps,
                              std::int64_t step) {
  const double t = double(step);
  const double step_size = lr / (1.0 - std::pow(beta1, t));
  const double bias_correction2_sqrt = std::pow(1.0 - std::pow(beta2, t), 0.5);
  return {S(1.0 - beta1), S(beta2), S(1.0 - beta2), S(step_size), S(bias_correction2_sqrt),
          S(eps)};
}

enum class OptimizerKind { adam, adagrad, sgd_momentum };

// The update of one step and the state vectors it changes, as the optimizer steps take them:
// Adam's exp_avg and exp_avg_sq, Adagrad's sum or SGD's momentum buffer.
template <class S>
struct OptimizerUpdate {
  OptimizerKind kind;
  S* state[2] = {nullptr, nullptr};
  S lr = 0, eps = 0;        // Adagrad; lr for SGD
  S momentum = 0;           // SGD
  bool first_step = false;  // SGD
  AdamStep<S> adam{};       // Adam
};

// Where each parameter starts in a vector holding every layer's U, W and b, layer by layer, then
// the head's V and c, one after the other, row-major, and its length. Layer 0 reads the inputs
// (U is hidden × input); each layer above reads the hidden states of the one below (U is
// hidden × hidden); the head reads the last layer's.
struct ParameterLayout {
  Index input_size, hidden_size, output_size;
  Index layers = 1;

  Index layer_input_size(Index layer) const { return layer == 0 ? input_size : hidden_size; }
  Index U(Index layer = 0) const {
    const Index first_layer = hidden_size * (input_size + hidden_size + 1);
    const Index upper_layer = hidden_size * (2 * hidden_size + 1);
    return layer == 0 ? 0 : first_layer + (layer - 1) * upper_layer;
  }
  Index W(Index layer = 0) const { return U(layer) + hidden_size * layer_input_size(layer); }
  Index b(Index layer = 0) const { return W(layer) + hidden_size * hidden_size; }
  Index V() const { return U(layers); }
  Index c() const { return V() + output_size * hidden_size; }
  Index size() const { return c() + output_size; }
};

struct StepOutcome {
  double loss;       // the mean cross-entropy of the chunk, in nats
  double grad_norm;  // the gradients' global norm before clipping
  bool updated;      // false when either is NaN or infinite: the parameters are then unchanged
};

}  // namespace bptt
