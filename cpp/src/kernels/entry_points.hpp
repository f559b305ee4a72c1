// The functions of one instruction set's kernels that the public API reaches through the kernel
// table (../kernel_table.hpp, filled by kernel_table.cpp); each is documented at its public
// counterpart in include/bptt.
#pragma once

#include "bptt/optimizer_types.hpp"
#include "bptt/types.hpp"

#include <cstddef>

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
void recurrent_forward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                       const S* h0, Activation activation, S* states);

template <class S>
void recurrent_backward(const LayerWeights<S>& weights, const SequenceInput<S>& inputs,
                        Activation activation, const S* h0, const S* hidden, const S* d_hidden,
                        const S* d_h_last, const LayerGradients<S>& grads);

template <class S>
void head_logits(const HeadWeights<S>& weights, const S* hidden, Index rows, S* logits);

std::size_t head_loss_and_grad_scratch_bytes(Index rows, Index output_size,
                                             std::size_t scalar_bytes);

template <class S>
double head_loss_and_grad(const HeadWeights<S>& weights, const S* hidden, Index rows,
                          const Targets<S>& targets, Reduction reduction,
                          const HeadGradients<S>& grads, S* d_hidden);

template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done, std::size_t memory_budget);

template <class S>
StepOutcome training_step(const ParameterLayout& layout, S* params, S* grads,
                          const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                          S* h_last, Activation activation, double max_norm,
                          const OptimizerUpdate<S>& update, std::size_t memory_budget,
                          ProductOperands operands);

template <class S>
void adagrad_step(S* param, const S* grad, S* sum, Index size, S lr, S eps);

template <class S>
void adam_step(S* param, const S* grad, S* exp_avg, S* exp_avg_sq, Index size,
               const AdamStep<S>& step);

template <class S>
void sgd_momentum_step(S* param, const S* grad, S* buffer, Index size, S lr, S momentum,
                       bool first_step);

template <class S>
bool all_finite(const S* values, Index size);

}  // namespace bptt::BPTT_ISA_NAMESPACE
