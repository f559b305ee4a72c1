#include "entry_points.hpp"
#include "matrix_views.hpp"
#include "scalars.hpp"
#include "stack_loss.hpp"
#include "team.hpp"

#include "../thread_shares.hpp"

#include <algorithm>
#include <cmath>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

// Below this many parameters the clipping and the update take a microsecond or two: a second
// thread, woken from its wait right after the loss's, would save less than it costs.
constexpr Index kMinParametersToSplit = 8192;

// Σ x², in double, in lanes of partial sums combined in a fixed order: the same bits wherever x
// lies in memory (a vectorized reduction would start its packets at x's first aligned address).
template <class S>
double sum_of_squares(const S* x, Index n) {
  constexpr Index kLanes = 64;  // eight vectors of doubles: the adds do not wait on each other
  double lanes[kLanes] = {};
  Index i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (Index lane = 0; lane < kLanes; ++lane)
      lanes[lane] += double(x[i + lane]) * double(x[i + lane]);
  double total = 0.0;
  for (; i < n; ++i) total += double(x[i]) * double(x[i]);
  for (const double lane : lanes) total += lane;
  return total;
}

template <class S>
void apply_update(const OptimizerUpdate<S>& update, S* params, const S* grads, Index first,
                  Index count) {
  S* const state0 = update.state[0] + first;
  switch (update.kind) {
    case OptimizerKind::adam:
      adam_step(params + first, grads + first, state0, update.state[1] + first, count,
                update.adam);
      break;
    case OptimizerKind::adagrad:
      adagrad_step(params + first, grads + first, state0, count, update.lr, update.eps);
      break;
    case OptimizerKind::sgd_momentum:
      sgd_momentum_step(params + first, grads + first, state0, count, update.lr, update.momentum,
                        update.first_step);
      break;
  }
}

}  // namespace

template <class S>
StepOutcome training_step(const ParameterLayout& layout, S* params, S* grads,
                          const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                          S* h_last, Activation activation, double max_norm,
                          const OptimizerUpdate<S>& update, std::size_t memory_budget,
                          ProductOperands operands) {
  // The vector in two parts, each clipped and updated by one thread of two: the layers' U, W
  // and b on the first, the head's V and c on the second, the threads on which the loss's
  // two-thread schedules read those weights (rnn_loss_pipeline.hpp). An update writes the
  // weights: on another thread, each line of them would first have to leave the reader's cache.
  // The sum of squares adds the parts' in this order whatever the thread count.
  struct Part {
    Index first, count;
    int thread;
  };
  const Part parts[2] = {{layout.U(), layout.V() - layout.U(), 0},
                         {layout.V(), layout.size() - layout.V(), 1}};
  double squares[2] = {0.0, 0.0};
  StepOutcome outcome{0.0, 0.0, false};
  auto owns = [](const Part& part, int thread, int threads) {
    return threads == 1 || part.thread == thread;
  };
  GradientsDone clip_and_update;
  clip_and_update.max_threads = layout.size() >= kMinParametersToSplit ? 2 : 1;
  clip_and_update.run = [&](int thread, int threads, double loss) {
    for (int p = 0; p < 2; ++p)
      if (owns(parts[p], thread, threads))
        squares[p] = sum_of_squares(grads + parts[p].first, parts[p].count);
    team_barrier(threads);
    const double norm = std::sqrt(squares[0] + squares[1]);
    if (thread == 0) outcome.grad_norm = norm;
    if (!std::isfinite(loss) || !std::isfinite(norm)) return;
    const double clip_coef = max_norm / (norm + 1e-6);
    for (const Part& part : parts) {
      if (!owns(part, thread, threads)) continue;
      S* const part_grads = grads + part.first;
      if (clip_coef < 1.0) {  // torch multiplies by min(coef, 1); a factor of 1 changes nothing
        const S factor = S(clip_coef);
        for (Index i = 0; i < part.count; ++i) part_grads[i] *= factor;
      }
      apply_update(update, params, grads, part.first, part.count);
    }
    if (thread == 0) outcome.updated = true;
  };
  if (layout.layers > 1) {
    outcome.loss = stack_loss_and_grad(layout, params, grads, inputs, targets, h0, h_last,
                                       activation, operands);
    on_threads(std::min(clip_and_update.max_threads, free_threads()), [&](int thread, int threads) {
      clip_and_update.run(thread, threads, outcome.loss);
    });
    return outcome;
  }
  const Index D = layout.input_size, H = layout.hidden_size, O = layout.output_size;
  const LayerWeights<S> layer{params + layout.U(), params + layout.W(), params + layout.b(), D, H,
                              operands};
  const HeadWeights<S> head{params + layout.V(), params + layout.c(), H, O, operands};
  // dh0 is not a parameter's: it goes to a buffer of its own.
  RowMatrix<S> h0_grad(inputs.batch, H);
  const LayerGradients<S> layer_grads{grads + layout.U(), grads + layout.W(), grads + layout.b(),
                                      h0_grad.data()};
  const HeadGradients<S> head_grads{grads + layout.V(), grads + layout.c()};
  outcome.loss = rnn_loss_and_grad(layer, head, inputs, targets, h0, activation, Reduction::mean,
                                   layer_grads, head_grads, h_last, &clip_and_update,
                                   memory_budget);
  return outcome;
}

#define BPTT_INSTANTIATE(S)                                                                  \
  template StepOutcome training_step<S>(const ParameterLayout&, S*, S*, const SequenceInput<S>&, \
                                        const Targets<S>&, const S*, S*, Activation, double,     \
                                        const OptimizerUpdate<S>&, std::size_t, ProductOperands);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
