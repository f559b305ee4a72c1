// One step of `bptt train` in one call of the core: the mean loss and the gradients of a chunk of
// streams, clipping by the gradients' global norm as torch.nn.utils.clip_grad_norm_ does, and the
// optimizer's update. Parameters, gradients and optimizer states each live in one vector holding
// U, W, b, V and c one after the other, row-major (the layout of bptt's ParameterVector).
#pragma once

#include "bptt/optimizer_steps.hpp"
#include "bptt/rnn_loss.hpp"
#include "bptt/types.hpp"

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

enum class OptimizerKind { adam, adagrad, sgd_momentum };

// The update of one step and the state vectors it changes, as the optimizer steps take them
// (optimizer_steps.hpp): Adam's exp_avg and exp_avg_sq, Adagrad's sum or SGD's momentum buffer.
template <class S>
struct OptimizerUpdate {
  OptimizerKind kind;
  S* state[2] = {nullptr, nullptr};
  S lr = 0, eps = 0;        // Adagrad; lr for SGD
  S momentum = 0;           // SGD
  bool first_step = false;  // SGD
  AdamStep<S> adam{};       // Adam
};

// Where each parameter starts in the vector, and its length.
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

// grads receives the gradients (clipped), h_last the state after the last step; the parameters
// and the optimizer's states are updated in place unless the loss or the norm is not finite.
// The norm's sum of squares is taken in double, over the layer's parameters and the head's, each
// in an order independent of where the vector lies in memory: the same on one thread or two.
template <class S>
StepOutcome training_step(const ParameterLayout& layout, S* params, S* grads,
                          const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                          S* h_last, Activation activation, double max_norm,
                          const OptimizerUpdate<S>& update);

#define BPTT_DECLARE_TRAINING_STEP(S, EXTERN)                                                 \
  EXTERN template StepOutcome training_step<S>(const ParameterLayout&, S*, S*,                \
                                               const SequenceInput<S>&, const Targets<S>&,    \
                                               const S*, S*, Activation, double,              \
                                               const OptimizerUpdate<S>&);
BPTT_DECLARE_TRAINING_STEP(float, extern)
BPTT_DECLARE_TRAINING_STEP(double, extern)

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
