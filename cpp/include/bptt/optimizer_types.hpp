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

// Where each parameter starts in a vector holding U, W, b, V and c one after the other,
// row-major, and its length.
struct ParameterLayout {
  Index input_size, hidden_size, output_size;

  Index U() const { return 0; }
  Index W() const { return hidden_size * input_size; }
  Index b() const { return W() + hidden_size * hidden_size; }
  Index V() const { return b() + hidden_size; }
  Index c() const { return V() + output_size * hidden_size; }
  Index size() const { return c() + output_size; }
};

struct StepOutcome {
  double loss;       // the mean cross-entropy of the chunk, in nats
  double grad_norm;  // the gradients' global norm before clipping
  bool updated;      // false when either is NaN or infinite: the parameters are then unchanged
};

}  // namespace bptt
