// How two threads hand work to each other without a barrier: one publishes how far it got, the
// other waits, spinning briefly and then yielding, until that is far enough.
#pragma once

#include "bptt/types.hpp"

#include <atomic>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace bptt::BPTT_ISA_NAMESPACE {
namespace detail {

// Spins briefly until ready() (a chunk takes microseconds), then yields the CPU, which on a busy
// machine may be needed by the thread being waited for.
template <class Ready>
void wait_until(Ready&& ready) {
  constexpr int kSpinsBeforeYield = 4096;
  for (int spins = 0; !ready(); ++spins) {
    if (spins < kSpinsBeforeYield) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
    } else {
      std::this_thread::yield();
    }
  }
}

// How far one thread has got, for another to wait on. Each counter has a cache line of its own,
// which only its writer changes.
class alignas(64) StepCounter {
 public:
  void publish(Index done) { done_.store(done, std::memory_order_release); }
  Index done() const { return done_.load(std::memory_order_acquire); }
  void wait_for(Index done) const {
    wait_until([&] { return done_.load(std::memory_order_acquire) >= done; });
  }

 private:
  std::atomic<Index> done_{0};
};

// Items of work 0, 1, 2, ... run one at a time in their order, each by whichever thread claims it
// first: a sum taken item after item is the same bits whichever threads take its terms.
class alignas(64) OrderedClaims {
 public:
  // Claims `item` if every item before it is finished and nobody holds it.
  bool try_claim(Index item) {
    Index free = 2 * item;
    return turn_.compare_exchange_strong(free, free + 1, std::memory_order_acq_rel,
                                         std::memory_order_acquire);
  }
  void finish(Index item) { turn_.store(2 * item + 2, std::memory_order_release); }
  // The items finished; the next is the one to claim.
  Index finished() const { return turn_.load(std::memory_order_acquire) / 2; }
  void wait_finished(Index items) const {
    wait_until([&] { return finished() >= items; });
  }

 private:
  std::atomic<Index> turn_{0};  // 2k: k items finished; 2k + 1: item k claimed
};

}  // namespace detail
}  // namespace bptt::BPTT_ISA_NAMESPACE
