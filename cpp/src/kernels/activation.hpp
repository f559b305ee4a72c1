// The element-wise nonlinearity h = σ(a), and σ'(a) written in terms of h = σ(a) so that the
// backward pass needs only the stored hidden states.
#pragma once

#include "matrix_views.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

namespace bptt::BPTT_ISA_NAMESPACE {

// In place: values = 1/(1 + e^{-values}), n a multiple of the SIMD packet. As e^{-|a|}/(1 +
// e^{-|a|}) below 0 and 1/(1 + e^{-|a|}) above, which is within a few ulp at any a: Eigen's
// float logistic, a rational fit, is off by up to 1e4 ulp below a = -4. A value below the
// smallest normal number is 0 (Eigen's exp stops at the smallest it gives). By packets, as
// Eigen 3.4 does not vectorize a select.
template <class S>
void logistic_in_place(S* values, Index n) {
  namespace simd = Eigen::internal;
  using Packet = typename simd::packet_traits<S>::type;
  constexpr Index kPacket = simd::packet_traits<S>::size;
  const Packet one = simd::pset1<Packet>(S(1));
  const Packet underflow = simd::pset1<Packet>(std::log(std::numeric_limits<S>::min()));
  for (Index i = 0; i < n; i += kPacket) {
    const Packet a = simd::ploadu<Packet>(values + i);
    const Packet e = simd::pexp(simd::pnegate(simd::pabs(a)));
    Packet numerator = simd::pselect(simd::pcmp_lt(a, simd::pzero(a)), e, one);
    numerator = simd::pselect(simd::pcmp_lt(a, underflow), simd::pzero(a), numerator);
    simd::pstoreu(values + i, simd::pdiv(numerator, simd::padd(one, e)));
  }
}

// In place: block = σ(block); for tanh and the logistic, whole SIMD packets (see
// apply_activation_in_row).
template <class Block>
void apply_activation(Activation activation, Block&& block) {
  using S = typename std::decay_t<Block>::Scalar;
  auto a = block.array();
  switch (activation) {
    case Activation::tanh: a = a.tanh(); break;
    case Activation::sigmoid: logistic_in_place(block.data(), block.size()); break;
    case Activation::relu: a = a.max(S(0)); break;
    case Activation::identity: break;
  }
}

// In place: σ of n contiguous values. For tanh and the logistic, through an aligned block of
// whole SIMD packets: Eigen evaluates the values before the first aligned address and after the
// last whole packet one at a time, which for a row of 100 floats takes longer than its packets.
template <class S>
void apply_activation_in_row(Activation activation, S* values, Index n) {
  constexpr Index kPacket = Eigen::internal::packet_traits<S>::size;
  const bool whole_packets = reinterpret_cast<std::uintptr_t>(values) % 64 == 0 && n % kPacket == 0;
  if (whole_packets || (activation != Activation::tanh && activation != Activation::sigmoid)) {
    apply_activation(activation, Eigen::Map<Eigen::Matrix<S, 1, Eigen::Dynamic>>(values, n));
    return;
  }
  constexpr Index kBlock = 256;
  alignas(64) S block[kBlock];
  for (Index i = 0; i < n; i += kBlock) {
    const Index count = std::min(kBlock, n - i);
    const Index padded = (count + kPacket - 1) / kPacket * kPacket;
    std::copy_n(values + i, count, block);
    std::fill(block + count, block + padded, S(0));
    apply_activation(activation, Eigen::Map<Eigen::Matrix<S, 1, Eigen::Dynamic>, Eigen::Aligned64>(
                                     block, padded));
    std::copy_n(block, count, values + i);
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

}  // namespace bptt::BPTT_ISA_NAMESPACE
