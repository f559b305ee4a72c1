// The chunks of consecutive steps that the core cuts a sequence into: each chunk's rows
// (steps·batch of them) are worked on together while they are in cache. Chunks depend on the
// problem's size alone, never on timing or threads, so that results are repeatable.
#pragma once

#include "bptt/types.hpp"

#include <algorithm>

namespace bptt {

// The layer's chunks, and the whole model's where its steps do not pipeline: up to
// hidden size 256, about this many rows (chunk_rows), so that a chunk's da, previous states and
// inputs stay in cache from the loop to the products that take dW and dU from them (at hidden
// 256, 1 thread: 64 to 256 rows measured alike, 5-17% faster than one chunk of all rows).
constexpr Index kChunkRows = 128;

// The rows of such a chunk at hidden size H: kChunkRows, up to kWideChunkRows from H = 256 to
// 1024, where dW (4·H² bytes at float) outgrows a core's cache and each chunk's product reads and
// writes it whole; 512 rows make that a byte of traffic per 128 flops. At H 1024 (large, AMD
// Zen 1) the layer's backward ran 1.5-4% faster and the whole model 2.5-6%, with chunks of
// 512 to 6400 rows alike.
constexpr Index kWideChunkRows = 512;
inline Index chunk_rows(Index hidden_size) {
  return std::clamp(hidden_size / 2, kChunkRows, kWideChunkRows);
}

// The whole model's chunks where its steps pipeline (steps_pipeline, loss_plan.hpp): smaller,
// and at least kMinPipelineChunks of them, so that the following thread is never far behind.
constexpr Index kPipelineChunkRows = 64;
constexpr Index kMinPipelineChunks = 8;

// Segments on two threads: dL/dh and the logits in rings of this many chunks, so that the
// thread computing the heads works up to two chunks ahead of the backward loop.
constexpr Index kPipelineRingChunks = 4;

// The head on its own sums the loss over chunks of this many rows, in chunk order.
constexpr Index kLossChunkRows = 64;

// The steps of a ring of `ring_chunks` chunks of chunk_steps, over `chunks` chunks.
inline Index ring_steps(Index chunks, Index chunk_steps, Index ring_chunks) {
  return std::min(chunks, ring_chunks) * chunk_steps;
}

// Steps per chunk of about `rows` rows of `batch` sequences: at least 1, at most max_steps
// (when that is at least 1).
inline Index steps_per_chunk(Index rows, Index batch, Index max_steps) {
  const Index by_rows = (rows + batch - 1) / std::max<Index>(1, batch);
  return std::clamp<Index>(by_rows, 1, std::max<Index>(1, max_steps));
}

// The chunks of chunk_steps that `steps` steps make, the last of them possibly shorter.
inline Index chunk_count(Index steps, Index chunk_steps) {
  return (steps + chunk_steps - 1) / chunk_steps;
}

}  // namespace bptt
