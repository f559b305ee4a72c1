// One step of each optimizer of `bptt train`, over a whole parameter vector: torch.optim's update
// formulas, evaluated operation for operation in the parameters' precision. The kernels are
// compiled without contracting a·b + c into one rounding, so that a step agrees bitwise with the
// same formulas evaluated one array operation at a time (as NumPy would), in one pass over memory
// instead of one per operation.
#pragma once

#include "bptt/optimizer_types.hpp"

namespace bptt {

// torch.optim.Adagrad (no lr decay): s <- s + g·g; p <- p + (g·(−lr)) / (√s + ε).
template <class S>
void adagrad_step(S* param, const S* grad, S* sum, Index size, S lr, S eps);

// torch.optim.Adam: m <- m + (g − m)·(1 − β1); v <- v·β2 + (g·(1 − β2))·g;
// p <- p + (m·(−step_size)) / (√v / bias_correction2_sqrt + ε) (adam_step_scalars).
template <class S>
void adam_step(S* param, const S* grad, S* exp_avg, S* exp_avg_sq, Index size,
               const AdamStep<S>& step);

// torch.optim.SGD with momentum μ (no dampening, not Nesterov): b <- g at the first step, then
// b <- b·μ + g; p <- p + b·(−lr).
template <class S>
void sgd_momentum_step(S* param, const S* grad, S* buffer, Index size, S lr, S momentum,
                       bool first_step);

}  // namespace bptt
