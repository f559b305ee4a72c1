// The whole model of the source note: the recurrent layer composed with the softmax head,
// L = −Σ_t y_t · log softmax(c + V h_t), and its gradients by back-propagation through time.
#pragma once

#include "bptt/types.hpp"

#include <cstddef>
#include <functional>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

struct ProblemSize {
  Index steps, batch, input_size, hidden_size, output_size;
};

// Scratch bytes that rnn_loss_and_grad allocates: the hidden states (steps + 1)·batch·hidden,
// one (steps·batch) × max(hidden, output) work buffer and one chunk of upstream gradients.
std::size_t rnn_loss_and_grad_scratch_bytes(const ProblemSize& size, std::size_t scalar_bytes);

// Work a caller wants done on the finished gradients by a team of threads: run(thread, threads,
// L) is called by every thread of a team once L and every gradient are written. The team is
// the one that computed them when the call ran on two threads (so that each thread finds in its
// own cache the gradients it wrote), or else a new team of up to max_threads threads.
struct GradientsDone {
  std::function<void(int thread, int threads, double loss)> run;
  int max_threads = 1;
};

// Returns L; writes every gradient and h_last (batch × hidden, the state after the last step).
// h0 null means the zero initial state. With inputs.lengths, the targets at padded positions
// must be -1 (no loss), or L would count predictions that have no input. `done`, if given, runs
// once the gradients are written (and every read of the weights is over).
template <class S>
double rnn_loss_and_grad(const LayerWeights<S>& layer, const HeadWeights<S>& head,
                         const SequenceInput<S>& inputs, const Targets<S>& targets, const S* h0,
                         Activation activation, Reduction reduction,
                         const LayerGradients<S>& layer_grads, const HeadGradients<S>& head_grads,
                         S* h_last, const GradientsDone* done = nullptr);

#define BPTT_DECLARE_RNN_LOSS(S, EXTERN)                                                      \
  EXTERN template double rnn_loss_and_grad<S>(                                                \
      const LayerWeights<S>&, const HeadWeights<S>&, const SequenceInput<S>&, const Targets<S>&, \
      const S*, Activation, Reduction, const LayerGradients<S>&, const HeadGradients<S>&, S*,   \
      const GradientsDone*);
BPTT_DECLARE_RNN_LOSS(float, extern)
BPTT_DECLARE_RNN_LOSS(double, extern)

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
