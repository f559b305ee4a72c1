// The entry points each instruction set's kernels provide (kernels/entry_points.hpp), as a table
// of function pointers through which the public functions (dispatch.cpp) call the kernels of the
// set chosen for this CPU (instruction_sets.cpp).
#pragma once

#include "bptt/optimizer_types.hpp"
#include "bptt/types.hpp"

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace bptt {

template <class S>
struct ScalarKernels {
  void (*recurrent_forward)(const LayerWeights<S>&, const SequenceInput<S>&, const S* h0,
                            Activation, S* states);
  void (*recurrent_backward)(const LayerWeights<S>&, const SequenceInput<S>&, Activation,
                             const S* h0, const S* hidden, const S* d_hidden, const S* d_h_last,
                             const LayerGradients<S>&);
  void (*head_logits)(const HeadWeights<S>&, const S* hidden, Index rows, S* logits);
  double (*head_loss_and_grad)(const HeadWeights<S>&, const S* hidden, Index rows,
                               const Targets<S>&, Reduction, const HeadGradients<S>&,
                               S* d_hidden);
  double (*rnn_loss_and_grad)(const LayerWeights<S>&, const HeadWeights<S>&,
                              const SequenceInput<S>&, const Targets<S>&, const S* h0,
                              Activation, Reduction, const LayerGradients<S>&,
                              const HeadGradients<S>&, S* h_last, const GradientsDone*,
                              std::size_t memory_budget);
  StepOutcome (*training_step)(const ParameterLayout&, S* params, S* grads,
                               const SequenceInput<S>&, const Targets<S>&, const S* h0,
                               S* h_last, Activation, double max_norm,
                               const OptimizerUpdate<S>&, std::size_t memory_budget,
                               ProductOperands);
  void (*adagrad_step)(S* param, const S* grad, S* sum, Index size, S lr, S eps);
  void (*adam_step)(S* param, const S* grad, S* exp_avg, S* exp_avg_sq, Index size,
                    const AdamStep<S>&);
  void (*sgd_momentum_step)(S* param, const S* grad, S* buffer, Index size, S lr, S momentum,
                            bool first_step);
  bool (*all_finite)(const S* values, Index size);
};

struct KernelTable {
  const char* instruction_set;  // "baseline", "avx2", "avx512"
  const char* simd;             // Eigen's SimdInstructionSetsInUse() in these kernels
  const char* eigen_version;
  std::size_t (*head_loss_and_grad_scratch_bytes)(Index rows, Index output_size,
                                                  std::size_t scalar_bytes);
  ScalarKernels<float> f32;
  ScalarKernels<double> f64;
  // The set whose kernels f64 holds: this one, another (kernels/scalars.hpp) when the active
  // table is composed, or null in a set compiled without them.
  const char* float64_instruction_set;

  template <class S>
  const ScalarKernels<S>& scalar() const {
    if constexpr (sizeof(S) == sizeof(float)) return f32;
    else return f64;
  }
};

// One instruction set's kernels in the build.
struct KernelSet {
  const char* name;
  const KernelTable& (*table)();
};

// The table the core runs: that of the set `requested` names (the best one when null or empty)
// among `sets` (best last) that `supports` accepts, with the float64 kernels of the best such
// set below it that has them where it has none (kernels/scalars.hpp). Throws
// std::invalid_argument for a set requested but not available.
KernelTable choose_kernel_table(const std::vector<KernelSet>& sets, const char* requested,
                                const std::function<bool(const std::string&)>& supports);

// The table of the set the core runs (instruction_sets.cpp): choose_kernel_table over the
// build's sets, the CPU's support and the environment's BPTT_INSTRUCTION_SET.
const KernelTable& active_kernels();

}  // namespace bptt
