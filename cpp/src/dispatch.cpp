// The public functions of the core: each calls the kernels of the instruction set chosen for
// this CPU (instruction_sets.cpp), through the kernel table.
#include "bptt/finite.hpp"
#include "bptt/optimizer_steps.hpp"
#include "bptt/recurrent_layer.hpp"
#include "bptt/rnn_loss.hpp"
#include "bptt/softmax_head.hpp"
#include "bptt/training_step.hpp"

#include "kernel_table.hpp"

#include <stdexcept>

namespace bptt {
namespace {

template <class S>
const ScalarKernels<S>& kernels() {
  return active_kernels().scalar<S>();
}

}  // namespace

bool parse_activation(std::string_view name, Activation& out) {
  if (name == "tanh") out = Activation::tanh;
  else if (name == "sigmoid") out = Activation::sigmoid;
  else if (name == "relu") out = Activation::relu;
  else if (name == "identity") out = Activation::identity;
  else return false;
  return true;
}

bool parse_reduction(std::string_view name, Reduction& out) {
  if (name == "sum") out = Reduction::sum;
  else if (name == "mean") out = Reduction::mean;
  else return false;
  return true;
}

template <class S>
void recurrent_forward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                       const S* h0, Activation activation, S* states) {
  kernels<S>().recurrent_forward(weights, inputs, h0, activation, states);
}

template <class S>
void recurrent_backward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads) {
  kernels<S>().recurrent_backward(weights, inputs, activation, h0, hidden, d_hidden, d_h_last,
                                  grads);
}

template <class S>
void head_logits(const HeadWeights<S>& weights, const S* hidden, Index rows, S* logits) {
  kernels<S>().head_logits(weights, hidden, rows, logits);
}

template <class S>
double head_loss_and_grad(const HeadWeights<S>& weights, const S* hidden, Index rows,
                          const Targets<S>& targets, Reduction reduction,
                          const HeadGradients<S>& grads, S* d_hidden) {
  return kernels<S>().head_loss_and_grad(weights, hidden, rows, targets, reduction, grads,
                                         d_hidden);
}

std::size_t head_loss_and_grad_scratch_bytes(Index rows, Index output_size,
                                             std::size_t scalar_bytes) {
  return active_kernels().head_loss_and_grad_scratch_bytes(rows, output_size, scalar_bytes);
}

template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done, std::size_t memory_budget) {
  return kernels<S>().rnn_loss_and_grad(layer, head, inputs, targets, h0, activation, reduction,
                                        layer_grads, head_grads, h_last, done, memory_budget);
}

template <class S>
StepOutcome training_step(const ParameterLayout& layout, S* params, S* grads,
                          const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                          S* h_last, Activation activation, double max_norm,
                          const OptimizerUpdate<S>& update, std::size_t memory_budget,
                          ProductOperands operands) {
  if (layout.layers < 1 || (layout.layers > 1 && memory_budget != 0)) {
    throw std::invalid_argument(
        "training_step: expected layout.layers >= 1, and memory_budget 0 for a stack of layers");
  }
  return kernels<S>().training_step(layout, params, grads, inputs, targets, h0, h_last,
                                    activation, max_norm, update, memory_budget, operands);
}

template <class S>
void adagrad_step(S* param, const S* grad, S* sum, Index size, S lr, S eps) {
  kernels<S>().adagrad_step(param, grad, sum, size, lr, eps);
}

template <class S>
void adam_step(S* param, const S* grad, S* exp_avg, S* exp_avg_sq, Index size,
               const AdamStep<S>& step) {
  kernels<S>().adam_step(param, grad, exp_avg, exp_avg_sq, size, step);
}

template <class S>
void sgd_momentum_step(S* param, const S* grad, S* buffer, Index size, S lr, S momentum,
                       bool first_step) {
  kernels<S>().sgd_momentum_step(param, grad, buffer, size, lr, momentum, first_step);
}

template <class S>
bool all_finite(const S* values, Index size) {
  return kernels<S>().all_finite(values, size);
}

#define BPTT_INSTANTIATE(S)                                                                    \
  template void recurrent_forward<S>(const LayerWeights<S>&, const SequenceInput<S>&,          \
                                     const S*, Activation, S*);                                \
  template void recurrent_backward<S>(const LayerWeights<S>&, const SequenceInput<S>&,         \
                                      Activation, const S*, const S*, const S*, const S*,      \
                                      const LayerGradients<S>&);                               \
  template void head_logits<S>(const HeadWeights<S>&, const S*, Index, S*);                    \
  template double head_loss_and_grad<S>(const HeadWeights<S>&, const S*, Index,               \
                                        const Targets<S>&, Reduction, const HeadGradients<S>&, \
                                        S*);                                                   \
  template double rnn_loss_and_grad<S>(                                                        \
      const LayerWeights<S>&, const HeadWeights<S>&, const SequenceInput<S>&, const Targets<S>&, \
      const S*, Activation, Reduction, const LayerGradients<S>&, const HeadGradients<S>&, S*,   \
      const GradientsDone*, std::size_t);                                                      \
  template StepOutcome training_step<S>(const ParameterLayout&, S*, S*, const SequenceInput<S>&, \
                                        const Targets<S>&, const S*, S*, Activation, double,   \
                                        const OptimizerUpdate<S>&, std::size_t,                \
                                        ProductOperands);                                      \
  template void adagrad_step<S>(S*, const S*, S*, Index, S, S);                                \
  template void adam_step<S>(S*, const S*, S*, S*, Index, const AdamStep<S>&);                 \
  template void sgd_momentum_step<S>(S*, const S*, S*, Index, S, S, bool);                     \
  template bool all_finite<S>(const S*, Index);
BPTT_INSTANTIATE(float)
BPTT_INSTANTIATE(double)

}  // namespace bptt
