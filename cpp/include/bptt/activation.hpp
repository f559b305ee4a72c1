// The element-wise nonlinearity h = σ(a), and σ'(a) written in terms of h = σ(a) so that the
// backward pass needs only the stored hidden states.
#pragma once

#include "bptt/types.hpp"

#include <string_view>

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

// In place: block = σ(block).
template <class Block>
void apply_activation(Activation activation, Block&& block) {
  using S = typename std::decay_t<Block>::Scalar;
  auto a = block.array();
  switch (activation) {
    case Activation::tanh: a = a.tanh(); break;
    case Activation::sigmoid: a = a.logistic(); break;
    case Activation::relu: a = a.max(S(0)); break;
    case Activation::identity: break;
  }
}

// In place: grad = grad ⊙ σ'(a), with σ'(a) from h = σ(a).
template <class Grad, class Hidden>
void multiply_by_activation_derivative(Activation activation, Grad&& grad, const Hidden& hidden) {
  using S = typename std::decay_t<Grad>::Scalar;
  auto g = grad.array();
  const auto h = hidden.array();
  switch (activation) {
    case Activation::tanh: g *= S(1) - h.square(); break;
    case Activation::sigmoid: g *= h * (S(1) - h); break;
    // σ'(0) = 0, as PyTorch defines it; h > 0 exactly when a > 0.
    case Activation::relu: g = (h > S(0)).select(g, S(0)); break;
    case Activation::identity: break;
  }
}

inline bool parse_activation(std::string_view name, Activation& out) {
  if (name == "tanh") out = Activation::tanh;
  else if (name == "sigmoid") out = Activation::sigmoid;
  else if (name == "relu") out = Activation::relu;
  else if (name == "identity") out = Activation::identity;
  else return false;
  return true;
}

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
