// This instruction set's entry in the kernel table (../kernel_table.hpp).
#include "../kernel_table.hpp"

#include "entry_points.hpp"
#include "matrix_views.hpp"
#include "scalars.hpp"

#define BPTT_STRINGIFY_NAME(name) #name
#define BPTT_STRINGIFY(name) BPTT_STRINGIFY_NAME(name)

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

template <class S>
ScalarKernels<S> scalar_kernels() {
  return {&recurrent_forward<S>, &recurrent_backward<S>, &head_logits<S>,
          &head_loss_and_grad<S>, &rnn_loss_and_grad<S>,  &training_step<S>,
          &adagrad_step<S>,       &adam_step<S>,          &sgd_momentum_step<S>,
          &all_finite<S>};
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table{
      BPTT_STRINGIFY(BPTT_INSTRUCTION_SET_NAME),
      Eigen::SimdInstructionSetsInUse(),
      BPTT_STRINGIFY(EIGEN_WORLD_VERSION) "." BPTT_STRINGIFY(EIGEN_MAJOR_VERSION) "." BPTT_STRINGIFY(
          EIGEN_MINOR_VERSION),
      &head_loss_and_grad_scratch_bytes,
      scalar_kernels<float>(),
#if BPTT_FLOAT64_KERNELS
      scalar_kernels<double>(),
      BPTT_STRINGIFY(BPTT_INSTRUCTION_SET_NAME)};
#else
      ScalarKernels<double>{},  // another set's (instruction_sets.cpp)
      nullptr};
#endif
  return table;
}

}  // namespace bptt::BPTT_ISA_NAMESPACE
