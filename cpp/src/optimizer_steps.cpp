#include "bptt/optimizer_steps.hpp"

#include <cmath>

// Plain loops, which the compiler vectorizes with the exactly rounded square root and division
// of the instruction set; Eigen's fast-math square root is an approximation, and contracting
// a·b + c into one rounding is switched off for this file (cpp/CMakeLists.txt).
namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

template <class S>
void adagrad_step(S* __restrict param, const S* __restrict grad, S* __restrict sum, Index size,
                  S lr, S eps) {
  for (Index i = 0; i < size; ++i) {
    sum[i] += grad[i] * grad[i];
    param[i] += (grad[i] * -lr) / (std::sqrt(sum[i]) + eps);
  }
}

template <class S>
void adam_step(S* __restrict param, const S* __restrict grad, S* __restrict exp_avg,
               S* __restrict exp_avg_sq, Index size, const AdamStep<S>& step) {
  for (Index i = 0; i < size; ++i) {
    // torch's lerp for a weight below 0.5, and its addcmul
    exp_avg[i] += (grad[i] - exp_avg[i]) * step.one_minus_beta1;
    exp_avg_sq[i] = exp_avg_sq[i] * step.beta2 + (grad[i] * step.one_minus_beta2) * grad[i];
    // torch's addcdiv: (value·m) / denominator
    const S denominator = std::sqrt(exp_avg_sq[i]) / step.bias_correction2_sqrt + step.eps;
    param[i] += (exp_avg[i] * -step.step_size) / denominator;
  }
}

template <class S>
void sgd_momentum_step(S* __restrict param, const S* __restrict grad, S* __restrict buffer,
                       Index size, S lr, S momentum, bool first_step) {
  for (Index i = 0; i < size; ++i) {
    buffer[i] = first_step ? grad[i] : buffer[i] * momentum + grad[i];
    param[i] += buffer[i] * -lr;
  }
}

BPTT_DECLARE_OPTIMIZER_STEPS(float, )
BPTT_DECLARE_OPTIMIZER_STEPS(double, )

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
