#include "entry_points.hpp"
#include "scalars.hpp"
#include "team.hpp"

#include <algorithm>
#include <cmath>

// Plain loops, which the compiler vectorizes with the exactly rounded square root and division
// of the instruction set; Eigen's fast-math square root is an approximation, and contracting
// a·b + c into one rounding is switched off for this file (cpp/CMakeLists.txt).
namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

// Each element is updated on its own, so a split changes no bit of the result. A fork and join
// costs about 3 us here, what one thread takes for some 20,000 elements (a square root and a
// division each): a thread's share is at least this many.
constexpr Index kMinElementsPerThread = 32768;

// update(first, last) over [0, size), split across the free threads when that pays.
template <class Update>
void in_shares(Index size, Update&& update) {
  const int threads =
      int(std::min<Index>(free_threads(), std::max<Index>(1, size / kMinElementsPerThread)));
  on_threads(threads, [&](int thread, int team) {
    const auto [first, last] = column_share(size, thread, team, 1);  // elementwise: any split
    update(first, last);
  });
}

// The updates of the elements [first, last), written for the vectorizer: no two vectors alias.
template <class S>
void adagrad_range(S* __restrict param, const S* __restrict grad, S* __restrict sum,
                   Index first, Index last, S lr, S eps) {
  for (Index i = first; i < last; ++i) {
    sum[i] += grad[i] * grad[i];
    param[i] += (grad[i] * -lr) / (std::sqrt(sum[i]) + eps);
  }
}

template <class S>
void adam_range(S* __restrict param, const S* __restrict grad, S* __restrict exp_avg,
                S* __restrict exp_avg_sq, Index first, Index last, const AdamStep<S>& step) {
  for (Index i = first; i < last; ++i) {
    // torch's lerp for a weight below 0.5, and its addcmul
    exp_avg[i] += (grad[i] - exp_avg[i]) * step.one_minus_beta1;
    exp_avg_sq[i] = exp_avg_sq[i] * step.beta2 + (grad[i] * step.one_minus_beta2) * grad[i];
    // torch's addcdiv: (value·m) / denominator
    const S denominator = std::sqrt(exp_avg_sq[i]) / step.bias_correction2_sqrt + step.eps;
    param[i] += (exp_avg[i] * -step.step_size) / denominator;
  }
}

template <class S>
void sgd_momentum_range(S* __restrict param, const S* __restrict grad, S* __restrict buffer,
                        Index first, Index last, S lr, S momentum, bool first_step) {
  for (Index i = first; i < last; ++i) {
    buffer[i] = first_step ? grad[i] : buffer[i] * momentum + grad[i];
    param[i] += buffer[i] * -lr;
  }
}

}  // namespace

template <class S>
void adagrad_step(S* param, const S* grad, S* sum, Index size, S lr, S eps) {
  in_shares(size, [&](Index first, Index last) {
    adagrad_range(param, grad, sum, first, last, lr, eps);
  });
}

template <class S>
void adam_step(S* param, const S* grad, S* exp_avg, S* exp_avg_sq, Index size,
               const AdamStep<S>& step) {
  in_shares(size, [&](Index first, Index last) {
    adam_range(param, grad, exp_avg, exp_avg_sq, first, last, step);
  });
}

template <class S>
void sgd_momentum_step(S* param, const S* grad, S* buffer, Index size, S lr, S momentum,
                       bool first_step) {
  in_shares(size, [&](Index first, Index last) {
    sgd_momentum_range(param, grad, buffer, first, last, lr, momentum, first_step);
  });
}

#define BPTT_INSTANTIATE(S)                                                                \
  template void adagrad_step<S>(S*, const S*, S*, Index, S, S);                              \
  template void adam_step<S>(S*, const S*, S*, S*, Index, const AdamStep<S>&);                \
  template void sgd_momentum_step<S>(S*, const S*, S*, Index, S, S, bool);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
