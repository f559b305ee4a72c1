// Unit tests of the C++ core alone: gradients against central finite differences in double, the
// layer and head composed by hand against the fused loss, float against double, empty sequences;
// through the public API (bptt/bptt.hpp), and for a few private pieces (the per-step products
// of the baseline kernels, the scratch blocks) through their own headers.
#include "bptt/bptt.hpp"

#include "kernels/bfloat16.hpp"
#include "kernel_table.hpp"
#include "kernels/step_product.hpp"
#include "loss_plan.hpp"
#include "workspace.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

using namespace bptt;
namespace kernels = bptt::BPTT_ISA_NAMESPACE;

namespace bptt::BPTT_ISA_NAMESPACE {
const KernelTable& kernel_table();
}

namespace {

int failures = 0;

void expect(bool ok, const std::string& what) {
  if (!ok) {
    ++failures;
    std::printf("FAILED: %s\n", what.c_str());
  }
}

template <class S>
struct Problem {
  Index T, B, D, H, O;
  bool tokens, soft_targets;
  std::vector<S> U, W, b, V, c, x, y, h0;
  std::vector<TokenId> token_ids, target_ids;

  bool reverse = false;
  std::vector<Index> lengths;  // empty: every sequence is full

  Problem(Index T_, Index B_, Index D_, Index H_, Index O_, bool tokens_, bool soft_, unsigned seed)
      : T(T_), B(B_), D(D_), H(H_), O(O_), tokens(tokens_), soft_targets(soft_) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> uniform(-0.6, 0.6);
    auto fill = [&](std::vector<S>& v, Index n) {
      v.resize(size_t(n));
      for (auto& e : v) e = S(uniform(rng));
    };
    fill(U, H * D); fill(W, H * H); fill(b, H); fill(V, O * H); fill(c, O); fill(h0, B * H);
    fill(x, T * B * D);
    y.resize(size_t(T * B * O));
    for (auto& e : y) e = S(std::abs(uniform(rng)));
    for (Index i = 0; i < T * B; ++i) {
      token_ids.push_back(TokenId(rng() % D));
      target_ids.push_back(i % 3 == 1 ? -1 : TokenId(rng() % O));  // some steps carry no loss
    }
  }
  LayerWeights<S> layer() const { return {U.data(), W.data(), b.data(), D, H}; }
  HeadWeights<S> head() const { return {V.data(), c.data(), H, O}; }
  // Sequences of lengths T, 1, 0, T, ...: padded positions carry no loss.
  void use_lengths() {
    lengths.resize(size_t(B));
    for (Index b = 0; b < B; ++b) lengths[size_t(b)] = b % 3 == 0 ? T : b % 3 == 1 ? 1 : 0;
    for (Index t = 0; t < T; ++t)
      for (Index b = 0; b < B; ++b)
        if (t >= lengths[size_t(b)]) target_ids[size_t(t * B + b)] = -1;
  }
  SequenceInput<S> inputs() const {
    SequenceInput<S> in{T, B};
    in.reverse = reverse;
    if (!lengths.empty()) in.lengths = lengths.data();
    if (tokens) in.tokens = token_ids.data();
    else in.dense = x.data();
    return in;
  }
  Targets<S> targets() const {
    Targets<S> t;
    if (soft_targets) t.soft = y.data();
    else t.ids = target_ids.data();
    return t;
  }
};

template <class S>
struct Gradients {
  std::vector<S> U, W, b, V, c, h0, x, h_last;
  double loss = 0;
};

// Every output the same bits (x is left at zeros with token inputs, in both).
template <class S>
bool same_bits(const Gradients<S>& a, const Gradients<S>& b) {
  return a.loss == b.loss && a.U == b.U && a.W == b.W && a.b == b.b && a.V == b.V &&
         a.c == b.c && a.h0 == b.h0 && a.h_last == b.h_last && a.x == b.x;
}

// The fused loss and gradients, written `offset` scalars into each output buffer (where it lies
// in memory must not change a bit).
template <class S>
Gradients<S> run(const Problem<S>& p, Activation activation, Reduction reduction = Reduction::sum,
                 std::size_t memory_budget = 0,
                 ProductOperands operands = ProductOperands::native, Index offset = 0) {
  Gradients<S> g;
  const size_t shift = size_t(offset);
  g.U.resize(size_t(p.H * p.D) + shift); g.W.resize(size_t(p.H * p.H) + shift);
  g.b.resize(size_t(p.H) + shift); g.V.resize(size_t(p.O * p.H) + shift);
  g.c.resize(size_t(p.O) + shift); g.h0.resize(size_t(p.B * p.H) + shift);
  g.x.resize(size_t(p.T * p.B * p.D) + shift); g.h_last.resize(size_t(p.B * p.H) + shift);
  LayerGradients<S> lg{g.U.data() + shift, g.W.data() + shift, g.b.data() + shift,
                       g.h0.data() + shift, p.tokens ? nullptr : g.x.data() + shift};
  LayerWeights<S> layer = p.layer();
  HeadWeights<S> head = p.head();
  layer.operands = head.operands = operands;
  const HeadGradients<S> hg{g.V.data() + shift, g.c.data() + shift};
  g.loss = rnn_loss_and_grad(layer, head, p.inputs(), p.targets(), p.h0.data(), activation,
                             reduction, lg, hg, g.h_last.data() + shift, nullptr, memory_budget);
  for (std::vector<S>* out : {&g.U, &g.W, &g.b, &g.V, &g.c, &g.h0, &g.x, &g.h_last})
    out->erase(out->begin(), out->begin() + std::ptrdiff_t(shift));
  return g;
}

// Central differences have error ~ eps·|L|/step + step²·|L'''|; 1e-5 relative is far above both.
void check_against_finite_differences(Activation activation, bool tokens, bool soft,
                                      bool reverse = false, bool with_lengths = false) {
  Problem<double> p(4, with_lengths ? 5 : 2, 3, 5, 4, tokens, soft,
                    7u + unsigned(activation) * 4 + tokens * 2 + soft);
  p.reverse = reverse;
  if (with_lengths) p.use_lengths();
  const Gradients<double> g = run(p, activation);
  const double step = 1e-6;
  auto check = [&](std::vector<double>& param, const std::vector<double>& grad, const char* name) {
    for (size_t i = 0; i < param.size(); ++i) {
      const double saved = param[i];
      param[i] = saved + step;
      const double up = run(p, activation).loss;
      param[i] = saved - step;
      const double down = run(p, activation).loss;
      param[i] = saved;
      const double numeric = (up - down) / (2 * step);
      const double tolerance = 1e-5 * std::max(1.0, std::abs(numeric));
      if (std::abs(numeric - grad[i]) > tolerance) {
        expect(false, std::string("d") + name + "[" + std::to_string(i) + "] activation " +
                          std::to_string(int(activation)) + " tokens " + std::to_string(tokens) +
                          " soft " + std::to_string(soft) + " reverse " + std::to_string(reverse) +
                          " lengths " + std::to_string(with_lengths) + ": analytic " + std::to_string(grad[i]) +
                          ", numeric " + std::to_string(numeric));
        return;
      }
    }
  };
  check(p.U, g.U, "U"); check(p.W, g.W, "W"); check(p.b, g.b, "b"); check(p.V, g.V, "V");
  check(p.c, g.c, "c"); check(p.h0, g.h0, "h0");
  if (!tokens) check(p.x, g.x, "x");
}

// The layer alone, driven by an upstream gradient D_t on every state and G on the carried state:
// L = Σ_t D_t · h_t + G · h_T, where padded positions have no state (D there must be ignored)
// and h_T of a sequence is its last real state.
void check_layer_backward_against_finite_differences(bool reverse, bool with_lengths) {
  Problem<double> p(5, 4, 3, 6, 2, false, false, 41u + reverse * 2 + with_lengths);
  p.reverse = reverse;
  if (with_lengths) p.use_lengths();
  const Index T = p.T, B = p.B, H = p.H, N = T * B;
  std::vector<double> D(size_t(N * H)), G(size_t(B * H));
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  for (auto& e : D) e = uniform(rng);
  for (auto& e : G) e = uniform(rng);
  const TimeOrder order{T, reverse};
  auto loss = [&]() {
    std::vector<double> states(size_t((T + 1) * B * H));
    recurrent_forward(p.layer(), p.inputs(), p.h0.data(), Activation::sigmoid, states.data());
    const double* hidden = states.data() + order.first_state_slot() * B * H;
    const double* h_last = states.data() + order.final_slot() * B * H;
    double L = 0;
    for (Index t = 0; t < T; ++t)
      for (Index b = 0; b < B; ++b)
        if (p.lengths.empty() || t < p.lengths[size_t(b)])
          for (Index j = 0; j < H; ++j) L += D[size_t((t * B + b) * H + j)] * hidden[(t * B + b) * H + j];
    for (Index i = 0; i < B * H; ++i) L += G[size_t(i)] * h_last[i];
    return L;
  };
  std::vector<double> states(size_t((T + 1) * B * H));
  recurrent_forward(p.layer(), p.inputs(), p.h0.data(), Activation::sigmoid, states.data());
  Gradients<double> g;
  g.U.resize(p.U.size()); g.W.resize(p.W.size()); g.b.resize(p.b.size()); g.h0.resize(p.h0.size());
  g.x.resize(p.x.size());
  recurrent_backward(p.layer(), p.inputs(), Activation::sigmoid, p.h0.data(),
                     static_cast<const double*>(states.data()) + order.first_state_slot() * B * H,
                     D.data(), G.data(),
                     LayerGradients<double>{g.U.data(), g.W.data(), g.b.data(), g.h0.data(), g.x.data()});
  const double step = 1e-6;
  auto check = [&](std::vector<double>& param, const std::vector<double>& grad, const char* name) {
    for (size_t i = 0; i < param.size(); ++i) {
      const double saved = param[i];
      param[i] = saved + step;
      const double up = loss();
      param[i] = saved - step;
      const double down = loss();
      param[i] = saved;
      const double numeric = (up - down) / (2 * step);
      if (std::abs(numeric - grad[i]) > 1e-5 * std::max(1.0, std::abs(numeric))) {
        expect(false, std::string("layer d") + name + "[" + std::to_string(i) + "] reverse " +
                          std::to_string(reverse) + " lengths " + std::to_string(with_lengths) +
                          ": analytic " + std::to_string(grad[i]) + ", numeric " + std::to_string(numeric));
        return;
      }
    }
  };
  check(p.U, g.U, "U"); check(p.W, g.W, "W"); check(p.b, g.b, "b"); check(p.h0, g.h0, "h0");
  check(p.x, g.x, "x");
}

// The layer and the head called separately, as other front ends will, give the fused result.
void check_composition_matches_fused() {
  Problem<double> p(6, 3, 4, 7, 5, false, false, 99u);
  const Gradients<double> fused = run(p, Activation::tanh);
  const Index N = p.T * p.B;
  std::vector<double> hidden(size_t((p.T + 1) * p.B * p.H));
  recurrent_forward(p.layer(), p.inputs(), p.h0.data(), Activation::tanh, hidden.data());
  std::vector<double> dV(size_t(p.O * p.H)), dc(size_t(p.O)), d_hidden(size_t(N * p.H));
  const double loss =
      head_loss_and_grad(p.head(), hidden.data() + p.B * p.H, N, p.targets(), Reduction::sum,
                         HeadGradients<double>{dV.data(), dc.data()}, d_hidden.data());
  Gradients<double> g;
  g.U.resize(fused.U.size()); g.W.resize(fused.W.size()); g.b.resize(fused.b.size());
  g.h0.resize(fused.h0.size()); g.x.resize(fused.x.size());
  recurrent_backward(p.layer(), p.inputs(), Activation::tanh, p.h0.data(),
                     hidden.data() + p.B * p.H, d_hidden.data(), static_cast<const double*>(nullptr),
                     LayerGradients<double>{g.U.data(), g.W.data(), g.b.data(), g.h0.data(), g.x.data()});
  auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
    for (size_t i = 0; i < a.size(); ++i)
      if (std::abs(a[i] - b[i]) > 1e-12 * std::max(1.0, std::abs(b[i]))) return false;
    return true;
  };
  expect(std::abs(loss - fused.loss) <= 1e-12 * std::abs(loss), "composed loss equals fused loss");
  expect(close(dV, fused.V) && close(dc, fused.c), "composed head gradients equal fused ones");
  expect(close(g.U, fused.U) && close(g.W, fused.W) && close(g.b, fused.b) &&
             close(g.h0, fused.h0) && close(g.x, fused.x),
         "composed layer gradients equal fused ones");
}

// float agrees with double to a few hundred float ulps on a small, well-conditioned problem.
void check_float_matches_double() {
  Problem<double> pd(20, 4, 6, 16, 9, false, false, 5u);
  Problem<float> pf(20, 4, 6, 16, 9, false, false, 5u);
  const auto gd = run(pd, Activation::sigmoid);
  const auto gf = run(pf, Activation::sigmoid);
  double worst = 0;
  for (size_t i = 0; i < gd.W.size(); ++i)
    worst = std::max(worst, std::abs(double(gf.W[i]) - gd.W[i]) / std::max(1.0, std::abs(gd.W[i])));
  expect(worst < 300 * 1.2e-7, "float dW within 300 ulps of double, got " + std::to_string(worst));
  expect(std::abs(gf.loss - gd.loss) < 1e-5 * std::abs(gd.loss), "float loss matches double");
}

void check_empty_sequence_gives_zero() {
  Problem<double> p(0, 3, 4, 5, 6, false, false, 3u);
  const auto g = run(p, Activation::relu);
  bool zero = g.loss == 0.0;
  for (double v : g.U) zero = zero && v == 0.0;
  for (double v : g.h0) zero = zero && v == 0.0;
  expect(zero, "T = 0 gives zero loss and zero gradients");
  bool h_last_is_h0 = true;
  for (size_t i = 0; i < g.h_last.size(); ++i) h_last_is_h0 = h_last_is_h0 && g.h_last[i] == p.h0[i];
  expect(h_last_is_h0, "T = 0 gives h_last = h0");
}

void check_mean_is_sum_over_count() {
  Problem<double> p(5, 3, 4, 5, 6, true, false, 11u);
  const auto sum = run(p, Activation::tanh, Reduction::sum);
  const auto mean = run(p, Activation::tanh, Reduction::mean);
  const double counted = double(std::count_if(p.target_ids.begin(), p.target_ids.end(),
                                              [](TokenId id) { return id >= 0; }));
  expect(std::abs(mean.loss - sum.loss / counted) < 1e-12, "mean loss is sum / counted targets");
  expect(std::abs(mean.W[3] - sum.W[3] / counted) < 1e-12, "mean gradient is sum / counted targets");
}

// The fused loss gives the same bits on any number of threads: pipelined on two threads or
// stepwise for short problems (rnn_loss_pipeline.hpp), or with each step's product split
// across the team (2·B·H² of 16 MFLOP and more); and under any memory budget (loss_plan.hpp).
void check_results_are_the_same_bits_for_any_threads_and_budget() {
  struct Size {
    Index T, B, H;
    const char* schedule;
  };
  // 40 steps of 7 sequences: 280 rows, in pipelined chunks; 6 steps of 2, and 9 of one sequence
  // (products of one row), stepwise; 4 steps of 32 of hidden size 512, each step split.
  for (const Size size : {Size{40, 7, 6, "pipeline"}, Size{6, 2, 6, "stepwise"},
                          Size{9, 1, 6, "stepwise"}, Size{4, 32, 512, "split steps"}})
    for (Activation activation : {Activation::tanh, Activation::relu})
      for (bool tokens : {false, true})
        for (bool soft : {false, true})
          for (Reduction reduction : {Reduction::sum, Reduction::mean}) {
            Problem<double> p(size.T, size.B, 3, size.H, 5, tokens, soft, 5u + tokens * 2 + soft);
            set_num_threads(1);
            const Gradients<double> one = run(p, activation, reduction);
            const std::string what = std::string(size.schedule) + ", activation " +
                                     std::to_string(int(activation)) + " tokens " +
                                     std::to_string(tokens) + " soft " + std::to_string(soft) +
                                     " mean " + std::to_string(reduction == Reduction::mean);
            auto same = [&](const Gradients<double>& other) { return same_bits(one, other); };
            for (int threads : {2, 3, 4}) {
              set_num_threads(threads);
              expect(same(run(p, activation, reduction)),
                     what + ": " + std::to_string(threads) + " threads");
            }
            set_num_threads(1);
            const ProblemSize problem_size{size.T, size.B, 3, size.H, 5};
            const LossMemoryPlan full = rnn_loss_memory_plan(problem_size, sizeof(double), tokens, 0);
            for (double share : {0.9, 0.5, 0.25, 0.0}) {
              const auto budget = std::max(full.minimum_bytes,
                                           std::size_t(share * double(full.bytes)));
              expect(same(run(p, activation, reduction, budget)),
                     what + ": budget " + std::to_string(budget));
            }
          }
}

// Where the outputs lie in memory changes no bit, also in products so small that Eigen would
// take them coefficient by coefficient from the first aligned address (parallel_product.hpp):
// gradients written at each offset within a SIMD packet give the bits of those at offset 0.
template <class S>
void check_results_do_not_depend_on_where_the_outputs_lie() {
  for (const bool tokens : {false, true})
  for (const bool with_lengths : {false, true}) {
    Problem<S> p(6, 4, 3, 6, 5, tokens, false, 23u);
    if (with_lengths) p.use_lengths();
    set_num_threads(1);
    const Gradients<S> aligned = run(p, Activation::tanh);
    for (Index offset = 1; offset < Index(64 / sizeof(S)); ++offset) {
      const Gradients<S> shifted = run(p, Activation::tanh, Reduction::sum, 0,
                                       ProductOperands::native, offset);
      expect(same_bits(aligned, shifted),
             std::string(sizeof(S) == 4 ? "float" : "double") + " outputs " +
                 std::to_string(offset) + " scalars along, tokens " + std::to_string(tokens) +
                 " lengths " + std::to_string(with_lengths) +
                 ": the bits of those at offset 0");
    }
  }
}

// bfloat16 operands (bptt/types.hpp): rounding to nearest with ties to even, NaN kept; the
// states stored as bfloat16 (h_last has no low bits); the same bits on any thread count and
// under any budget; and the gradients within bfloat16's rounding (unit roundoff 2^-8, a few of
// them along each gradient's chain: 3e-2, tests/test_bfloat16.py) of float's.
void check_bfloat16_operands() {
  const float one_ulp = 1.0f / 128;  // bfloat16's spacing in [1, 2)
  expect(kernels::round_to_bfloat16(1 + one_ulp / 2) == 1.0f, "a tie rounds to even (down)");
  expect(kernels::round_to_bfloat16(1 + 1.5f * one_ulp) == 1 + 2 * one_ulp,
         "a tie rounds to even (up)");
  expect(kernels::round_to_bfloat16(1 + 0.75f * one_ulp) == 1 + one_ulp, "nearest, up");
  expect(std::isnan(kernels::round_to_bfloat16(std::numeric_limits<float>::quiet_NaN())),
         "NaN stays NaN");
  expect(std::isinf(kernels::round_to_bfloat16(std::numeric_limits<float>::max())),
         "beyond bfloat16's largest: infinity");
  const ProductOperands bf16 = ProductOperands::bfloat16;
  for (bool tokens : {false, true}) {
    Problem<float> p(60, 5, 7, 24, 9, tokens, false, 17u);
    // A contracting recurrence, as init_params draws one: in a chaotic one (this W unscaled)
    // any rounding grows along the steps, float's too.
    for (float& w : p.W) w *= 0.3f;
    set_num_threads(1);
    const Gradients<float> one = run(p, Activation::tanh, Reduction::mean, 0, bf16);
    const Gradients<float> native = run(p, Activation::tanh, Reduction::mean);
    bool stored_as_bfloat16 = true;
    for (float h : one.h_last) {
      std::uint32_t bits;
      std::memcpy(&bits, &h, sizeof bits);
      stored_as_bfloat16 = stored_as_bfloat16 && (bits & 0xFFFFu) == 0;
    }
    expect(stored_as_bfloat16, "bfloat16 operands: h_last is a bfloat16 value");
    double difference = 0, norm = 0;
    for (size_t i = 0; i < native.W.size(); ++i) {
      difference += std::pow(double(one.W[i]) - double(native.W[i]), 2);
      norm += std::pow(double(native.W[i]), 2);
    }
    expect(std::sqrt(difference / norm) < 3e-2 && difference > 0,
           "bfloat16 dW within bfloat16's rounding of float's, and not equal to it: " +
               std::to_string(std::sqrt(difference / norm)));
    auto same = [&](const Gradients<float>& other) { return same_bits(one, other); };
    for (int threads : {2, 3}) {
      set_num_threads(threads);
      expect(same(run(p, Activation::tanh, Reduction::mean, 0, bf16)),
             "bfloat16: the same bits on " + std::to_string(threads) + " threads");
    }
    set_num_threads(1);
    const LossMemoryPlan full =
        rnn_loss_memory_plan({p.T, p.B, p.D, p.H, p.O}, sizeof(float), tokens, 0, bf16);
    for (double share : {0.5, 0.0}) {
      const auto budget = std::max(full.minimum_bytes, std::size_t(share * double(full.bytes)));
      expect(same(run(p, Activation::tanh, Reduction::mean, budget, bf16)),
             "bfloat16: the same bits under a budget of " + std::to_string(budget));
    }
  }
}

// The per-step products C += A·op(W) against a plain triple loop in double, for one row (the
// matrix-vector kernel, whose packets of W end inside a row or not, and Eigen's product where
// R would not pay: for one product, or at H = 300) and several, over column shares that start
// anywhere, both uses of W, and a C with a row stride wider than its share.
template <class S>
void check_step_products_match_plain_loops() {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  const double tolerance = 64 * double(std::numeric_limits<S>::epsilon());
  for (Index H : {1, 3, 16, 17, 40, 100, 131, 300})
    for (Index rows : {1, 3})
      for (Index products : {1, 100})
        for (kernels::WeightUse use : {kernels::WeightUse::transposed, kernels::WeightUse::as_is}) {
          std::vector<S> W(size_t(H * H)), A(size_t(rows * H)), C(size_t(rows * (H + 5)));
          for (auto& e : W) e = S(uniform(rng));
          for (auto& e : A) e = S(uniform(rng));
          for (auto& e : C) e = S(uniform(rng));
          const Index first = H / 3, cols = H - first - H / 5;
          std::vector<S> expected = C;
          for (Index r = 0; r < rows; ++r)
            for (Index j = 0; j < cols; ++j) {
              double sum = double(C[size_t(r * (H + 5) + first + j)]);
              for (Index k = 0; k < H; ++k) {
                const S w = use == kernels::WeightUse::transposed ? W[size_t((first + j) * H + k)]
                                                         : W[size_t(k * H + first + j)];
                sum += double(A[size_t(r * H + k)]) * double(w);
              }
              expected[size_t(r * (H + 5) + first + j)] = S(sum);
            }
          kernels::StepProduct<S> product(W.data(), H, use, first, cols, rows, H, products);
          product.accumulate(A.data(), H, C.data() + first, H + 5);
          double worst = 0;
          for (size_t i = 0; i < C.size(); ++i)
            worst = std::max(worst, std::abs(double(C[i]) - double(expected[i])) /
                                        (1 + std::abs(double(expected[i]))));
          expect(worst <= tolerance * std::sqrt(double(H)),
                 "step product H=" + std::to_string(H) + " rows=" + std::to_string(rows) +
                     (use == kernels::WeightUse::transposed ? " transposed" : " as_is") + " error " +
                     std::to_string(worst));
        }
}

void check_workspace_reuses_blocks() {
  const std::size_t small = 1 << 20;
  void* first = nullptr;
  {
    Workspace workspace(small);
    first = workspace.take<float>(small / sizeof(float));
    expect(reinterpret_cast<std::uintptr_t>(first) % Workspace::kAlignment == 0,
           "a workspace block starts on a 64-byte boundary");
  }
  {
    Workspace again(small / 2);
    expect(again.take<char>(1) == first, "the next call that fits gets the kept block back");
    Workspace nested(small / 2);
    expect(nested.take<char>(1) != first, "a workspace made while another is alive gets other memory");
  }
}

void check_workspace_keeps_at_most_its_cap() {
  Workspace::release_kept();
  const std::size_t mib = std::size_t(1) << 20;
  // Each larger than every block kept before it: each a block of its own, given back in turn.
  for (const std::size_t size : {20, 24, 28, 32}) Workspace workspace(size * mib);
  const std::size_t kept = Workspace::release_kept();
  expect(kept <= Workspace::kMaxKeptBytes, "a thread keeps at most kMaxKeptBytes in all, kept " +
                                               std::to_string(kept));
  expect(kept == (32 + 28) * mib, "the largest blocks that fit are kept, kept " +
                                      std::to_string(kept));
}

// Each step against its formula written one rounding at a time (volatile temporaries), over a
// length that leaves a scalar tail after the vectorized part.
template <class S>
void check_optimizer_steps_round_each_operation() {
  const Index n = 37;
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<S> param(n), grad(n), first(n), second(n);
  for (Index i = 0; i < n; ++i) {
    param[i] = S(uniform(rng));
    grad[i] = S(uniform(rng));
    first[i] = S(uniform(rng));
    second[i] = S(std::abs(uniform(rng)));
  }
  auto p = param, m = first, v = second;
  const AdamStep<S> step{S(0.1), S(0.999), S(0.001), S(0.02), S(0.3), S(1e-8)};
  adam_step(p.data(), grad.data(), m.data(), v.data(), n, step);
  bool equal = true;
  for (Index i = 0; i < n; ++i) {
    volatile S difference = grad[i] - first[i];
    volatile S moved = difference * step.one_minus_beta1;
    volatile S mean = first[i] + moved;
    volatile S decayed = second[i] * step.beta2;
    volatile S weighted = grad[i] * step.one_minus_beta2;
    volatile S square = weighted * grad[i];
    volatile S variance = decayed + square;
    volatile S root = std::sqrt(S(variance));
    volatile S corrected = root / step.bias_correction2_sqrt;
    volatile S denominator = corrected + step.eps;
    volatile S scaled = mean * -step.step_size;
    volatile S update = scaled / denominator;
    volatile S expected = param[i] + update;
    equal = equal && m[i] == mean && v[i] == variance && p[i] == expected;
  }
  expect(equal, "adam_step rounds each operation as written");

  auto q = param, sum = second;
  adagrad_step(q.data(), grad.data(), sum.data(), n, S(0.05), S(1e-10));
  equal = true;
  for (Index i = 0; i < n; ++i) {
    volatile S square = grad[i] * grad[i];
    volatile S total = second[i] + square;
    volatile S root = std::sqrt(S(total));
    volatile S denominator = root + S(1e-10);
    volatile S scaled = grad[i] * -S(0.05);
    volatile S update = scaled / denominator;
    volatile S expected = param[i] + update;
    equal = equal && sum[i] == total && q[i] == expected;
  }
  expect(equal, "adagrad_step rounds each operation as written");
}

// The training step in one call against its parts called one after another: the mean loss and
// its gradients, the global norm and the clip of torch.nn.utils.clip_grad_norm_, then each
// optimizer's step; on one thread and two (over 8192 parameters, the clip and the update are
// split), with the clip active and not, and with a NaN parameter, which must leave every vector
// as it was.
void check_training_step_composes_its_parts() {
  for (const OptimizerKind kind :
       {OptimizerKind::adam, OptimizerKind::adagrad, OptimizerKind::sgd_momentum})
    for (const double max_norm : {1e6, 0.05})
      for (const int threads : {1, 2})
        for (const bool poisoned : {false, true}) {
          Problem<double> p(5, 2, 40, 64, 40, true, false, 17u);
          for (auto& id : p.target_ids) id = std::max<TokenId>(id, 0);
          const ParameterLayout layout{p.D, p.H, p.O};
          std::vector<double> params;
          for (const auto* part : {&p.U, &p.W, &p.b, &p.V, &p.c})
            params.insert(params.end(), part->begin(), part->end());
          if (poisoned) params[size_t(layout.V() + 3)] = std::nan("");
          const Index n = layout.size();
          std::vector<double> first(static_cast<size_t>(n)), second(static_cast<size_t>(n));
          for (Index i = 0; i < n; ++i) {
            first[size_t(i)] = 0.01 * double(i % 7);
            second[size_t(i)] = 0.02 * double(i % 5);
          }
          OptimizerUpdate<double> update{kind, {first.data(), second.data()}};
          update.lr = 0.05;
          update.eps = 1e-10;
          update.momentum = 0.9;
          update.adam = AdamStep<double>{0.1, 0.999, 0.001, 0.02, 0.3, 1e-8};

          // The parts: the gradients by rnn_loss_and_grad, clipped and stepped by hand.
          const Problem<double> unpacked = p;
          std::vector<double> expected = params, expected_first = first,
                              expected_second = second;
          set_num_threads(1);
          Gradients<double> g;
          if (!poisoned) g = run(unpacked, Activation::tanh, Reduction::mean);
          std::vector<double> grad;
          for (const auto* part : {&g.U, &g.W, &g.b, &g.V, &g.c})
            grad.insert(grad.end(), part->begin(), part->end());
          double squares = 0.0;
          for (const double value : grad) squares += value * value;
          const double norm = std::sqrt(squares), coef = max_norm / (norm + 1e-6);
          if (!poisoned) {
            if (coef < 1.0)
              for (auto& value : grad) value *= coef;
            if (kind == OptimizerKind::adam)
              adam_step(expected.data(), grad.data(), expected_first.data(),
                        expected_second.data(), n, update.adam);
            else if (kind == OptimizerKind::adagrad)
              adagrad_step(expected.data(), grad.data(), expected_first.data(), n, update.lr,
                           update.eps);
            else
              sgd_momentum_step(expected.data(), grad.data(), expected_first.data(), n,
                                update.lr, update.momentum, update.first_step);
          }

          set_num_threads(threads);
          std::vector<double> grads(static_cast<size_t>(n)), h_last(static_cast<size_t>(p.B * p.H));
          const StepOutcome outcome =
              training_step(layout, params.data(), grads.data(), p.inputs(), p.targets(),
                            p.h0.data(), h_last.data(), Activation::tanh, max_norm, update);
          set_num_threads(1);
          const std::string what = "training step, optimizer " + std::to_string(int(kind)) +
                                   " max_norm " + std::to_string(max_norm) + " threads " +
                                   std::to_string(threads) + " poisoned " +
                                   std::to_string(poisoned);
          if (poisoned) {
            expect(!outcome.updated && std::isnan(outcome.loss), what + ": reports the NaN");
            expect(first == expected_first && second == expected_second &&
                       std::equal(params.begin(), params.end(), expected.begin(),
                                  [](double a, double b) { return a == b || (a != a && b != b); }),
                   what + ": leaves the parameters and states unchanged");
            continue;
          }
          expect(outcome.updated, what + ": updates");
          expect(std::abs(outcome.loss - g.loss) <= 1e-12 * std::abs(g.loss), what + ": loss");
          expect(std::abs(outcome.grad_norm - norm) <= 1e-12 * norm, what + ": norm");
          // The norms' sums differ in order: a few ulps, which Adam's division by √v of a
          // near-zero gradient can magnify to a few ulps of a large update.
          auto close = [](const std::vector<double>& a, const std::vector<double>& b) {
            for (size_t i = 0; i < a.size(); ++i)
              if (std::abs(a[i] - b[i]) > 1e-12 * std::max(1.0, std::abs(b[i]))) return false;
            return true;
          };
          expect(close(params, expected) && close(first, expected_first) &&
                     close(second, expected_second),
                 what + ": parameters and states");
          expect(h_last == g.h_last || threads == 2, what + ": h_last");
        }
}

// The binomial schedule's cost in closed form is the minimum of its recurrence: reversing n
// chunks with s slots advances m chunks, reverses the rest with s − 1 and then the first m with
// s, for the best m; and the split the kernel takes attains that minimum.
void check_binomial_cost_is_the_recurrence_minimum() {
  constexpr Index kChunks = 60, kSlots = 8;
  // best[n][s], by brute force over every advance m.
  std::vector<std::vector<double>> best(kChunks + 1, std::vector<double>(kSlots + 1, 0.0));
  for (Index n = 0; n <= kChunks; ++n)
    for (Index s = 0; s <= kSlots; ++s) {
      if (n <= 1) best[size_t(n)][size_t(s)] = double(n);
      else if (s == 0) best[size_t(n)][size_t(s)] = 0.5 * double(n) * double(n + 1);
      else {
        double least = std::numeric_limits<double>::infinity();
        for (Index m = 1; m < n; ++m)
          least = std::min(least, double(m) + best[size_t(n - m)][size_t(s - 1)] +
                                      best[size_t(m)][size_t(s)]);
        best[size_t(n)][size_t(s)] = least;
      }
    }
  for (Index n = 1; n <= kChunks; ++n)
    for (Index s = 0; s <= kSlots; ++s) {
      const std::string what = "binomial n " + std::to_string(n) + " s " + std::to_string(s);
      expect(binomial_cost(n, s) == best[size_t(n)][size_t(s)], what + ": cost");
      if (s == 0 || s >= n - 1 || n < 2) continue;
      const Index m = binomial_split(n, s);
      expect(double(m) + best[size_t(n - m)][size_t(s - 1)] + best[size_t(m)][size_t(s)] ==
                 best[size_t(n)][size_t(s)],
             what + ": split");
    }
}

// A stack's training step (layout.layers > 1) against the public layer and head functions
// composed by hand: layer 0 on the token ids, layer 1 on layer 0's states, the head on layer
// 1's, then back down; the same loss, gradients and last states bit for bit (rate 0 and no clip:
// the step leaves the gradients as the loss gave them), on one thread and two.
void check_stacked_training_step_composes_the_layers() {
  const Index T = 7, B = 3, D = 5, H = 12, O = 5, L = 2;
  const ParameterLayout layout{D, H, O, L};
  std::mt19937 rng(23u);
  std::uniform_real_distribution<double> uniform(-0.6, 0.6);
  std::vector<double> params(static_cast<size_t>(layout.size())), h0(size_t(L * B * H));
  for (auto& value : params) value = uniform(rng);
  for (auto& value : h0) value = uniform(rng);
  std::vector<TokenId> ids(size_t(T * B)), targets(size_t(T * B));
  for (auto& id : ids) id = TokenId(rng() % D);
  for (auto& id : targets) id = TokenId(rng() % O);

  auto weights = [&](Index k) {
    return LayerWeights<double>{params.data() + layout.U(k), params.data() + layout.W(k),
                                params.data() + layout.b(k), layout.layer_input_size(k), H};
  };
  std::vector<double> expected(params.size()), states0(size_t((T + 1) * B * H)),
      states1(states0.size()), d_hidden(size_t(T * B * H)), d_below(d_hidden.size()),
      d_h0(size_t(B * H));
  SequenceInput<double> tokens{T, B};
  tokens.tokens = ids.data();
  SequenceInput<double> dense{T, B};
  dense.dense = states0.data() + B * H;
  Targets<double> target_view;
  target_view.ids = targets.data();
  set_num_threads(1);
  recurrent_forward(weights(0), tokens, h0.data(), Activation::tanh, states0.data());
  recurrent_forward(weights(1), dense, h0.data() + B * H, Activation::tanh, states1.data());
  const HeadWeights<double> head{params.data() + layout.V(), params.data() + layout.c(), H, O};
  const double expected_loss = head_loss_and_grad(
      head, states1.data() + B * H, T * B, target_view, Reduction::mean,
      HeadGradients<double>{expected.data() + layout.V(), expected.data() + layout.c()},
      d_hidden.data());
  const double* no_carried_gradient = nullptr;
  recurrent_backward(weights(1), dense, Activation::tanh, h0.data() + B * H,
                     states1.data() + B * H, d_hidden.data(), no_carried_gradient,
                     LayerGradients<double>{expected.data() + layout.U(1),
                                            expected.data() + layout.W(1),
                                            expected.data() + layout.b(1), d_h0.data(),
                                            d_below.data()});
  recurrent_backward(weights(0), tokens, Activation::tanh, h0.data(), states0.data() + B * H,
                     d_below.data(), no_carried_gradient,
                     LayerGradients<double>{expected.data() + layout.U(0),
                                            expected.data() + layout.W(0),
                                            expected.data() + layout.b(0), d_h0.data()});

  for (const int threads : {1, 2}) {
    set_num_threads(threads);
    std::vector<double> stepped = params, grads(params.size()), h_last(h0.size()),
                        momentum(params.size());
    OptimizerUpdate<double> update{OptimizerKind::sgd_momentum, {momentum.data(), nullptr}};
    update.first_step = true;  // lr 0: nothing moves
    const StepOutcome outcome =
        training_step(layout, stepped.data(), grads.data(), tokens, target_view, h0.data(),
                      h_last.data(), Activation::tanh, 1e30, update);
    const std::string what = "stacked training step, " + std::to_string(threads) + " thread(s)";
    expect(outcome.updated && outcome.loss == expected_loss, what + ": loss");
    expect(grads == expected, what + ": gradients");
    expect(std::equal(h_last.begin(), h_last.begin() + B * H, states0.end() - B * H) &&
               std::equal(h_last.begin() + B * H, h_last.end(), states1.end() - B * H),
           what + ": last states");
    expect(stepped == params, what + ": parameters unchanged at rate 0");
  }
  set_num_threads(1);
}

// Three sets as a build for AVX-512 holds them: the widest without float64 kernels of its own.
const KernelTable& narrow_table() { return kernels::kernel_table(); }
const KernelTable& middle_table() {
  static KernelTable table = [] {
    KernelTable middle = kernels::kernel_table();
    middle.instruction_set = middle.float64_instruction_set = "middle";
    middle.f64.all_finite = [](const double*, Index) { return true; };
    return middle;
  }();
  return table;
}
const KernelTable& wide_table() {
  static KernelTable table = [] {
    KernelTable wide = kernels::kernel_table();
    wide.instruction_set = "wide";
    wide.f32.all_finite = [](const float*, Index) { return false; };
    wide.f64 = {};
    wide.float64_instruction_set = nullptr;
    return wide;
  }();
  return table;
}

void check_the_float64_kernels_come_from_the_best_set_below_that_has_them() {
  const std::vector<KernelSet> sets = {
      {"narrow", &narrow_table}, {"middle", &middle_table}, {"wide", &wide_table}};
  const auto all = [](const std::string&) { return true; };
  const KernelTable best = choose_kernel_table(sets, nullptr, all);
  expect(std::string(best.instruction_set) == "wide" &&
             best.f32.all_finite == wide_table().f32.all_finite,
         "the widest supported set runs float32");
  expect(std::string(best.float64_instruction_set) == "middle" &&
             best.f64.all_finite == middle_table().f64.all_finite &&
             best.f64.training_step == middle_table().f64.training_step,
         "float64 runs the best set below it that has float64 kernels");
  const KernelTable skipping = choose_kernel_table(
      sets, "", [](const std::string& name) { return name != "middle"; });
  expect(std::string(skipping.float64_instruction_set) == "baseline" &&
             skipping.f64.all_finite == narrow_table().f64.all_finite,
         "an unsupported set lends no float64 kernels");
  const KernelTable requested = choose_kernel_table(sets, "middle", all);
  expect(std::string(requested.instruction_set) == "middle" &&
             std::string(requested.float64_instruction_set) == "middle",
         "a set with float64 kernels runs its own");
  bool refused = false;
  try {
    choose_kernel_table(sets, "wider", all);
  } catch (const std::invalid_argument& error) {
    refused = std::string(error.what()).find("expected one of narrow, middle, wide") !=
              std::string::npos;
  }
  expect(refused, "a set not available is refused, naming those that are");
  bool none = false;
  try {
    choose_kernel_table({{"wide", &wide_table}}, nullptr, all);
  } catch (const std::logic_error&) {
    none = true;
  }
  expect(none, "a set without float64 kernels and none below is refused");
}

}  // namespace

int main() {
  set_num_threads(1);
  check_binomial_cost_is_the_recurrence_minimum();
  for (Activation activation : {Activation::tanh, Activation::sigmoid, Activation::relu, Activation::identity})
    for (bool tokens : {false, true})
      for (bool soft : {false, true}) check_against_finite_differences(activation, tokens, soft);
  // Reversed time and per-sequence lengths, alone and together (lengths need integer targets).
  for (bool reverse : {false, true})
    for (bool with_lengths : {false, true})
      check_against_finite_differences(Activation::tanh, false, !with_lengths, reverse, with_lengths);
  for (bool reverse : {false, true})
    for (bool with_lengths : {false, true})
      check_layer_backward_against_finite_differences(reverse, with_lengths);
  check_composition_matches_fused();
  check_float_matches_double();
  check_empty_sequence_gives_zero();
  check_mean_is_sum_over_count();
  check_workspace_reuses_blocks();
  check_workspace_keeps_at_most_its_cap();
  check_step_products_match_plain_loops<float>();
  check_step_products_match_plain_loops<double>();
  check_results_are_the_same_bits_for_any_threads_and_budget();
  check_results_do_not_depend_on_where_the_outputs_lie<float>();
  check_results_do_not_depend_on_where_the_outputs_lie<double>();
  check_optimizer_steps_round_each_operation<float>();
  check_optimizer_steps_round_each_operation<double>();
  check_training_step_composes_its_parts();
  check_stacked_training_step_composes_the_layers();
  check_bfloat16_operands();
  expect(!available_instruction_sets().empty() && available_instruction_sets()[0] == "baseline",
         "the baseline instruction set is always available");
  expect(instruction_set() == available_instruction_sets().back(),
         "the best available instruction set runs");
  check_the_float64_kernels_come_from_the_best_set_below_that_has_them();
  std::printf("%s: %d failure(s)\n", failures ? "FAILED" : "passed", failures);
  return failures ? 1 : 0;
}
