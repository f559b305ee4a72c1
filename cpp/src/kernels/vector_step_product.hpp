// c += a·op(W) for the per-step products of a single sequence (batch 1), where a is one row and
// the product a matrix-vector product. op(W) is copied once, before the step loop, into a
// row-major matrix R (depth × cols) whose rows are padded to whole SIMD packets; each step is
// then c += Σ_k a_k R_k, whole packets of R scaled by a broadcast of a_k, with the packets of c
// held in registers through the k loop. Neither form of W itself suits that: W h_prev in row
// form reads W's rows as dot products, each ending in a horizontal sum, and Wᵀ da reads rows
// that end in a partial packet. At hidden size 100, Eigen's matrix-vector products took 2 to 2.7
// times as long per step. R costs H·H values, like the packed W of larger batches; once it
// outgrows the L2 cache, every step reads it from further away, as Eigen's product reads W,
// and copying it no longer pays.
#pragma once

#include "matrix_views.hpp"

#include <algorithm>

// The accumulators are arrays indexed by a loop counter: unrolled, they stay in registers, where
// otherwise GCC keeps them in memory, storing each one back on every k.
#define BPTT_UNROLL _Pragma("GCC unroll 8")

namespace bptt::BPTT_ISA_NAMESPACE {

enum class WeightUse { transposed, as_is };  // C += A·Wᵀ (forward) or C += A·W (backward)

template <class S>
class VectorStepProduct {
 public:
  // The columns [first, first + cols) of c, from a W of size depth × depth (row-major, W_stride).
  VectorStepProduct(const S* W, Index W_stride, WeightUse use, Index first, Index cols,
                    Index depth)
      : cols_(cols), depth_(depth), stride_(round_up(cols)) {
    weights_.resize(depth_ * stride_);
    if (use == WeightUse::as_is) {
      // R = W's columns [first, first + cols): row k is a slice of W's row k.
      for (Index k = 0; k < depth_; ++k)
        std::copy_n(W + k * W_stride + first, cols_, weights_.data() + k * stride_);
    } else {
      transpose(W + first * W_stride, W_stride);  // R = (W's rows [first, first + cols))ᵀ
    }
    for (Index k = 0; k < depth_; ++k)  // the padding, read as whole packets
      std::fill(weights_.data() + k * stride_ + cols_, weights_.data() + (k + 1) * stride_, S(0));
  }

  // Whether R is worth making for `products` products: it takes about as long as 5 of them
  // save (hidden size 100), and once larger than 256 KiB it saves nothing (measured at hidden
  // sizes 100 to 2048: from 512, a call took as long or up to 28% longer than with Eigen's).
  static bool pays(Index cols, Index depth, Index products) {
    return products >= 8 && double(depth) * double(round_up(cols)) * sizeof(S) <= 256.0 * 1024;
  }

  // c (cols) += a (depth) · R.
  void accumulate(const S* a, S* c) const {
    Index j = 0;
    for (; j + kTile * kPacket <= stride_; j += kTile * kPacket) tile<kTile>(a, c, j);
    switch ((stride_ - j) / kPacket) {  // the remaining packets, fewer than a tile
#define BPTT_TILE_CASE(n) \
  case n:                 \
    tile<n>(a, c, j);     \
    break;
      BPTT_TILE_CASE(1)
      BPTT_TILE_CASE(2)
      BPTT_TILE_CASE(3)
      BPTT_TILE_CASE(4)
      BPTT_TILE_CASE(5)
      BPTT_TILE_CASE(6)
      BPTT_TILE_CASE(7)
#undef BPTT_TILE_CASE
      default:
        break;
    }
  }

 private:
  using Packet = typename Eigen::internal::packet_traits<S>::type;
  static constexpr Index kPacket = Eigen::internal::unpacket_traits<Packet>::size;
  // Packets of c per pass over R: two accumulators each (even and odd k, so that consecutive
  // multiply-adds into one register do not wait on each other), within the register file.
  static constexpr int kTile = EIGEN_ARCH_DEFAULT_NUMBER_OF_REGISTERS >= 32 ? 8 : 4;
  static_assert(kTile <= 8, "accumulate's switch covers tails of up to 7 packets");
  using Buffer = Eigen::Matrix<S, Eigen::Dynamic, 1>;  // aligned, as pload needs

  static Index round_up(Index n) { return (n + kPacket - 1) / kPacket * kPacket; }

  // c[j, j + N·packet) += Σ_k a_k R[k, j, j + N·packet), the last packet cut to cols.
  template <int N>
  void tile(const S* a, S* c, Index j) const {
    using namespace Eigen::internal;
    Packet even[N], odd[N];
    BPTT_UNROLL for (int q = 0; q < N; ++q) even[q] = odd[q] = pset1<Packet>(S(0));
    const S* row = weights_.data() + j;
    Index k = 0;
    for (; k + 1 < depth_; k += 2, row += 2 * stride_) {
      const Packet a0 = pset1<Packet>(a[k]), a1 = pset1<Packet>(a[k + 1]);
      BPTT_UNROLL for (int q = 0; q < N; ++q) {
        even[q] = pmadd(pload<Packet>(row + q * kPacket), a0, even[q]);
        odd[q] = pmadd(pload<Packet>(row + stride_ + q * kPacket), a1, odd[q]);
      }
    }
    if (k < depth_) {
      const Packet a0 = pset1<Packet>(a[k]);
      BPTT_UNROLL for (int q = 0; q < N; ++q) {
        even[q] = pmadd(pload<Packet>(row + q * kPacket), a0, even[q]);
      }
    }
    BPTT_UNROLL for (int q = 0; q < N; ++q) {
      const Index column = j + q * kPacket;
      const Packet sum = padd(even[q], odd[q]);
      if (column + kPacket <= cols_) {
        pstoreu(c + column, padd(ploadu<Packet>(c + column), sum));
      } else if (column < cols_) {
        alignas(64) S part[kPacket];
        pstore(part, sum);
        for (Index i = column; i < cols_; ++i) c[i] += part[i - column];
      }
    }
  }

  // R = Mᵀ for M the cols × depth block at `source`: whole packet-square blocks transposed in
  // registers, the edges element by element.
  void transpose(const S* source, Index source_stride) {
    using namespace Eigen::internal;
    S* R = weights_.data();
    const Index full_rows = cols_ / kPacket * kPacket, full_cols = depth_ / kPacket * kPacket;
    for (Index i = 0; i < full_rows; i += kPacket)
      for (Index k = 0; k < full_cols; k += kPacket) {
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wignored-attributes"  // the vector type's alignment, as in Eigen
        PacketBlock<Packet, int(kPacket)> block;
#pragma GCC diagnostic pop
        for (Index r = 0; r < kPacket; ++r)
          block.packet[r] = ploadu<Packet>(source + (i + r) * source_stride + k);
        ptranspose(block);
        for (Index r = 0; r < kPacket; ++r) pstore(R + (k + r) * stride_ + i, block.packet[r]);
      }
    for (Index k = full_cols; k < depth_; ++k)  // the last rows of R, written along them
      for (Index i = 0; i < cols_; ++i) R[k * stride_ + i] = source[i * source_stride + k];
    for (Index k = 0; k < full_cols; ++k)
      for (Index i = full_rows; i < cols_; ++i) R[k * stride_ + i] = source[i * source_stride + k];
  }

  Index cols_, depth_, stride_;
  Buffer weights_;  // R, depth × stride_
};

}  // namespace bptt::BPTT_ISA_NAMESPACE

#undef BPTT_UNROLL
