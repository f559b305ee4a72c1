// The loss in segments on two threads, under a memory budget (rnn_loss_pipeline.hpp).
#include "rnn_loss_pipeline.hpp"

#include "chunked_loss.hpp"
#include "recurrence.hpp"

#include <algorithm>

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

// Segments on two threads. First the segments are computed forward, keeping the state before
// each, on both threads where the steps and products split. Then, from the last segment, one
// thread runs each chunk's backward recurrence, dW, dU, dx and dh0; the other works ahead of it
// on each chunk's head (logits, loss, dO, dL/dh in rings of chunks) and dV and dc, and, between
// heads, computes the next segment's states again into the other segment buffer.
template <class S, class State>
double pipelined_segments_loss_and_grad(const LossCall<S>& call, const LossPlan& plan,
                                        State* checkpoints, State* segment_buffers[2],
                                        S* d_pre_ring, S* d_logits_ring, S* h_last) {
  const LossChunks& chunks = plan.chunks;
  const Index T = call.inputs.steps, B = call.inputs.batch, H = call.layer.hidden_size;
  const Index O = call.head.output_size, n = chunks.count, L = plan.segment_chunks;
  const Index segments = (n + L - 1) / L, ring = kPipelineRingChunks, BH = B * H;
  ChunkedLoss<S, State> loss(call, chunks,
                      GradientRows<S>{d_pre_ring, H, B, TimeOrder{T, false}, chunks.chunk_steps,
                                      ring});
  // Segment k holds the chunks [first_chunk(k), first_chunk(k + 1)), counted from the last.
  auto first_chunk = [&](Index k) { return std::max<Index>(0, n - (segments - k) * L); };
  auto buffer = [&](Index k) { return segment_buffers[k % 2]; };
  auto first_slot = [&](Index k) { return chunks.begin(first_chunk(k)); };
  auto d_logits = [&](Index j) {
    return d_logits_ring + ((n - 1 - j) % ring) * chunks.chunk_steps * B * O;
  };
  auto copy_state = [&](const State* from, State* to) { std::copy_n(from, BH, to); };
  auto start_segment = [&](Index k) { copy_state(checkpoints + k * BH, buffer(k)); };
  auto forward_chunk = [&](Index k, Index j) { loss.forward(j, buffer(k), first_slot(k)); };

  // The first pass: every segment forward, the state before each kept; the last stays.
  auto first_pass = [&] {
    loss.initial_state(checkpoints);
    for (Index k = 0; k < segments; ++k) {
      start_segment(k);
      for (Index j = first_chunk(k); j < first_chunk(k + 1); ++j) forward_chunk(k, j);
      const State* last = buffer(k) + (chunks.end(first_chunk(k + 1) - 1) - first_slot(k)) * BH;
      if (k + 1 < segments) copy_state(last, checkpoints + (k + 1) * BH);
      else loss.state_out(last, h_last);
    }
  };
  auto head = [&](Index k, Index j) {
    loss.head(j, buffer(k), first_slot(k), d_logits(j));
    loss.head_sums(j, buffer(k), first_slot(k), d_logits(j));
  };
  auto backward = [&](Index k, Index j) {
    loss.backward(j, buffer(k), first_slot(k));
    loss.layer_sums(j, buffer(k), first_slot(k));
    loss.rows_of_input_gradients(j);
  };

  StepCounter heads_done, chunks_done;
  // Counts of chunks from the last: heads_done and chunks_done reach n - j once chunk j's head,
  // or its backward pass and sums, are done.
  auto heads_thread = [&] {
    for (Index k = segments - 1; k >= 0; --k) {
      Index recomputed = k > 0 ? first_chunk(k - 1) : 0;  // the next chunk of segment k - 1
      const Index recompute_end = k > 0 ? first_chunk(k) : 0;
      auto recompute_one = [&] {
        if (recomputed == (k > 0 ? first_chunk(k - 1) : 0)) {
          // Segment k + 1's buffer is segment k - 1's: free once its chunks are done.
          chunks_done.wait_for(n - first_chunk(std::min(k + 1, segments)));
          start_segment(k - 1);
        }
        forward_chunk(k - 1, recomputed++);
      };
      for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j) {
        chunks_done.wait_for(n - std::min(n, j + ring - 1));  // j's ring slots are free
        head(k, j);
        heads_done.publish(n - j);
        if (recomputed < recompute_end) recompute_one();
      }
      while (recomputed < recompute_end) recompute_one();
    }
  };
  auto backward_thread = [&] {
    for (Index k = segments - 1; k >= 0; --k)
      for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j) {
        heads_done.wait_for(n - j);
        backward(k, j);
        chunks_done.publish(n - j);
      }
  };

  // The first pass runs before the pipeline's team, with nothing to overlap it: there its
  // steps and projections may take both threads (the same bits as on one).
  first_pass();
  double total = 0.0;
  on_threads(std::min(2, free_threads()), [&](int thread, int threads) {
    if (threads == 1) {  // no second thread to be had: the same work, one part after another
      for (Index k = segments - 1; k >= 0; --k) {
        for (Index j = first_chunk(k + 1) - 1; j >= first_chunk(k); --j) {
          head(k, j);
          backward(k, j);
        }
        if (k > 0) {
          start_segment(k - 1);
          for (Index j = first_chunk(k - 1); j < first_chunk(k); ++j) forward_chunk(k - 1, j);
        }
      }
    } else if (thread == 0) {
      backward_thread();
    } else if (thread == 1) {
      heads_thread();
    }
    team_barrier(threads);
    if (thread == 0) total = loss.finish();
    team_barrier(threads);
    if (call.done) call.done->run(thread, threads, total);
  });
  return total;
}

#define BPTT_INSTANTIATE(S, State)                                            \
  template double pipelined_segments_loss_and_grad<S, State>(                 \
      const LossCall<S>&, const LossPlan&, State*, State* [2], S*, S*, S*);
BPTT_FOR_EACH_SCALAR_AND_STATE(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
