#include "softmax_head.hpp"

#include "../chunks.hpp"
#include "bfloat16.hpp"
#include "entry_points.hpp"
#include "parallel_product.hpp"
#include "scalars.hpp"
#include "team.hpp"

#include "../workspace.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <vector>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace {

// Below this many logits the pass takes microseconds and threads would cost more than they give.
constexpr Index kMinLogitsToSplit = 1 << 15;

// Reductions and maps over a row of n contiguous values, in whole SIMD packets from its first
// value and then one value at a time: the same order of sums wherever the row lies in memory
// (Eigen's would start its packets at the row's first aligned address).
template <class S>
using Packet = typename Eigen::internal::packet_traits<S>::type;

template <class S>
constexpr Index packet_size() {
  return Eigen::internal::packet_traits<S>::size;
}

template <class S>
S row_max(const S* o, Index n) {
  using namespace Eigen::internal;
  const Index whole = n / packet_size<S>() * packet_size<S>();
  S largest = -std::numeric_limits<S>::infinity();
  if (whole > 0) {
    Packet<S> packets = ploadu<Packet<S>>(o);
    for (Index j = packet_size<S>(); j < whole; j += packet_size<S>())
      packets = pmax(packets, ploadu<Packet<S>>(o + j));
    largest = predux_max(packets);
  }
  for (Index j = whole; j < n; ++j) largest = std::max(largest, o[j]);
  return largest;
}

// o <- exp(o − shift); returns Σ o.
template <class S>
S exp_shifted_sum(S* o, Index n, S shift) {
  using namespace Eigen::internal;
  const Index whole = n / packet_size<S>() * packet_size<S>();
  const Packet<S> shifts = pset1<Packet<S>>(shift);
  Packet<S> sums = pset1<Packet<S>>(S(0));
  for (Index j = 0; j < whole; j += packet_size<S>()) {
    const Packet<S> e = pexp(psub(ploadu<Packet<S>>(o + j), shifts));
    pstoreu(o + j, e);
    sums = padd(sums, e);
  }
  S sum = predux(sums);
  for (Index j = whole; j < n; ++j) {
    o[j] = std::exp(o[j] - shift);
    sum += o[j];
  }
  return sum;
}

// One row of the fused pass: returns this row's −Σ y log ŷ and leaves (softmax·Σy − y)·scale;
// `k` is the row's class id (for targets.ids), read once.
template <class S>
double cross_entropy_row(S* row, Index O, const Targets<S>& targets, Index r, TokenId k,
                         S scale) {
  RowVectorView<S> o(row, O);
  const S max_logit = row_max(row, O);
  if (targets.ids) {
    const S shifted_target_logit = o(k) - max_logit;
    const S norm = exp_shifted_sum(row, O, max_logit);
    o *= scale / norm;
    o(k) -= scale;
    return std::log(double(norm)) - double(shifted_target_logit);
  }
  const ConstRowVectorView<S> y(targets.soft + r * O, O);
  // Plain loops, for sums in the same order wherever the targets live.
  double y_total = 0.0, y_dot_shifted = 0.0;
  for (Index k = 0; k < O; ++k) {
    y_total += double(y(k));
    y_dot_shifted += double(y(k)) * double(o(k) - max_logit);
  }
  const S norm = exp_shifted_sum(row, O, max_logit);
  o = (o * (S(y_total) / norm) - y) * scale;
  return y_total * std::log(double(norm)) - y_dot_shifted;
}

}  // namespace

template <class S>
void head_logits(const HeadWeights<S>& weights, ConstMatrixView<S> hidden, MatrixView<S> logits) {
  const Index H = weights.hidden_size, O = weights.output_size;
  logits.rowwise() = ConstRowVectorView<S>(weights.c, O);
  multiply(logits, hidden, matrix_view(weights.V, O, H, H).transpose(), true);
}

template <class S>
Index counted_targets(const Targets<S>& targets, Index rows) {
  if (!targets.ids) return rows;
  return Index(std::count_if(targets.ids, targets.ids + rows, [](TokenId id) { return id >= 0; }));
}

template <class S>
double softmax_cross_entropy(MatrixView<S> logits, const Targets<S>& targets,
                             Reduction reduction) {
  const Index N = logits.rows();
  const LossReduction reduced{reduction, counted_targets(targets, N)};
  if (reduced.counted == 0) {
    // Nothing counts: L = 0 and every gradient is zero, also for the mean (not 0/0).
    logits.setZero();
    return 0.0;
  }
  const S scale = reduced.gradient_scale<S>();
  const Index chunks = (N + kLossChunkRows - 1) / kLossChunkRows;
  auto chunk_loss = [&](Index chunk) {
    const Index first = chunk * kLossChunkRows, rows = std::min(N, first + kLossChunkRows) - first;
    const Index O = logits.cols();
    return softmax_cross_entropy_rows(
        matrix_view(logits.data() + first * logits.outerStride(), rows, O, logits.outerStride()),
        targets_from(targets, first, O), scale);
  };
  double loss = 0.0;
  const int threads = N * logits.cols() >= kMinLogitsToSplit ? free_threads() : 1;
  if (threads <= 1) {  // no parallel region: even a team of one costs microseconds
    for (Index chunk = 0; chunk < chunks; ++chunk) loss += chunk_loss(chunk);
    return reduced.loss(loss);
  }
  std::vector<double> chunk_losses(size_t(chunks), 0.0);
#pragma omp parallel for schedule(static) num_threads(threads)
  for (Index chunk = 0; chunk < chunks; ++chunk) chunk_losses[size_t(chunk)] = chunk_loss(chunk);
  for (const double each : chunk_losses) loss += each;
  return reduced.loss(loss);
}

template <class S>
double softmax_cross_entropy_rows(MatrixView<S> logits, const Targets<S>& targets, S scale) {
  double loss = 0.0;
  for (Index r = 0; r < logits.rows(); ++r) {
    S* const row = logits.data() + r * logits.outerStride();
    const TokenId k = targets.ids ? read_id(targets.ids, r) : 0;
    if (targets.ids && !id_in_range(k, logits.cols()))
      RowVectorView<S>(row, logits.cols()).setZero();  // -1, or changed during the call
    else loss += cross_entropy_row(row, logits.cols(), targets, r, k, scale);
  }
  return loss;
}

template <class S>
void head_parameter_gradients(ConstMatrixView<S> hidden, ConstMatrixView<S> d_logits,
                              const HeadGradients<S>& grads, bool accumulate) {
  const Index H = hidden.cols(), O = d_logits.cols(), N = hidden.rows();
  MatrixView<S> dV = matrix_view(grads.V, O, H, H);
  RowVectorView<S> dc(grads.c, O);
  if (!accumulate) {
    dc.setZero();
    if (N == 0) dV.setZero();
  }
  if (N == 0) return;
  multiply(dV, d_logits.transpose(), hidden, accumulate);
  for (Index r = 0; r < N; ++r) dc += d_logits.row(r);
}

template <class S>
void head_hidden_gradient(const HeadWeights<S>& weights, ConstMatrixView<S> d_logits,
                          MatrixView<S> d_hidden) {
  const Index H = weights.hidden_size, O = weights.output_size;
  if (d_hidden.rows() == 0) return;
  multiply(d_hidden, d_logits, matrix_view(weights.V, O, H, H));
}

std::size_t head_loss_and_grad_scratch_bytes(Index rows, Index output_size,
                                             std::size_t scalar_bytes) {
  return Workspace::bytes_for({std::size_t(rows * output_size) * scalar_bytes});
}

namespace {

// With bfloat16 operands (bfloat16.hpp), V and the hidden states rounded into copies from
// `workspace`, which then takes O·H + rows·H more floats.
template <class S>
struct HeadOperands {
  HeadWeights<S> weights;
  const S* hidden;

  HeadOperands(const HeadWeights<S>& given, const S* given_hidden, Index rows,
               std::optional<Workspace>& workspace)
      : weights(given), hidden(given_hidden) {
    if (given.operands != ProductOperands::bfloat16) return;
    const Index H = given.hidden_size, count = rows * H;
    workspace.emplace(Workspace::bytes_for(
        {std::size_t(given.output_size * H) * sizeof(S), std::size_t(count) * sizeof(S)}));
    weights = rounded_head(given, *workspace);
    S* const rounded_hidden = workspace->take<S>(std::size_t(count));
    rounded_copy(given_hidden, count, rounded_hidden);
    hidden = rounded_hidden;
  }
};

}  // namespace

template <class S>
void head_logits(const HeadWeights<S>& weights, const S* hidden, Index rows, S* logits) {
  const Index H = weights.hidden_size, O = weights.output_size;
  std::optional<Workspace> rounded;
  const HeadOperands<S> operands(weights, hidden, rows, rounded);
  head_logits(operands.weights, matrix_view(operands.hidden, rows, H, H),
              matrix_view(logits, rows, O, O));
}

template <class S>
double head_loss_and_grad(const HeadWeights<S>& given_weights, const S* given_hidden, Index rows,
                          const Targets<S>& targets, Reduction reduction,
                          const HeadGradients<S>& grads, S* d_hidden) {
  const Index H = given_weights.hidden_size, O = given_weights.output_size;
  std::optional<Workspace> rounded;
  const HeadOperands<S> operands(given_weights, given_hidden, rows, rounded);
  const HeadWeights<S>& weights = operands.weights;
  const ConstMatrixView<S> hidden_states = matrix_view(operands.hidden, rows, H, H);
  // The logits, then dL/do in place.
  Workspace workspace(head_loss_and_grad_scratch_bytes(rows, O, sizeof(S)));
  const MatrixView<S> logits = matrix_view(workspace.take<S>(std::size_t(rows * O)), rows, O, O);
  head_logits(weights, hidden_states, logits);
  const double loss = softmax_cross_entropy(logits, targets, reduction);
  if (weights.operands == ProductOperands::bfloat16) round_to_bfloat16(logits);
  const ConstMatrixView<S> d_logits = matrix_view(static_cast<const S*>(logits.data()), rows, O, O);
  head_parameter_gradients(hidden_states, d_logits, grads);
  head_hidden_gradient(weights, d_logits, matrix_view(d_hidden, rows, H, H));
  return loss;
}

#define BPTT_INSTANTIATE(S)                                                                      \
  template void head_logits<S>(const HeadWeights<S>&, ConstMatrixView<S>, MatrixView<S>);       \
  template Index counted_targets<S>(const Targets<S>&, Index);                                  \
  template double softmax_cross_entropy<S>(MatrixView<S>, const Targets<S>&, Reduction);        \
  template double softmax_cross_entropy_rows<S>(MatrixView<S>, const Targets<S>&, S);           \
  template void head_parameter_gradients<S>(ConstMatrixView<S>, ConstMatrixView<S>,             \
                                            const HeadGradients<S>&, bool);                     \
  template void head_hidden_gradient<S>(const HeadWeights<S>&, ConstMatrixView<S>,              \
                                        MatrixView<S>);                                         \
  template void head_logits<S>(const HeadWeights<S>&, const S*, Index, S*);                     \
  template double head_loss_and_grad<S>(const HeadWeights<S>&, const S*, Index,                 \
                                        const Targets<S>&, Reduction, const HeadGradients<S>&,  \
                                        S*);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
