#include "thread_shares.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#if defined(__linux__)
#include <fcntl.h>

#include <cstring>
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace bptt {
namespace {

int default_threads() {
#ifdef _OPENMP
  return std::clamp(omp_get_max_threads(), 1, kMaxThreads);
#else
  return std::clamp(int(std::thread::hardware_concurrency()), 1, kMaxThreads);
#endif
}

// A process forked after a team of OpenMP threads ran computes on one thread: the runtime's pool
// of threads does not survive fork(), and its next team would wait for them for ever. The team
// may be another library's (PyTorch's, sharing the one libgomp): a process of more than one
// thread at the fork may hold such a pool. The results are the same bits on one thread.
std::atomic<bool> teams_started{false};
std::atomic<bool> forked_after_teams{false};
std::atomic<bool> threads_at_fork{false};  // more than the forking thread

#if defined(__linux__)
// Whether the process runs more than one thread, from /proc/self/status's "Threads:" line, by
// open and read alone (a fork handler may run in a signal handler); true when it cannot tell.
bool other_threads_run() {
  const int file = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (file < 0) return true;
  char text[4096];
  std::size_t length = 0;
  for (ssize_t got; length < sizeof(text) - 1 &&
                    (got = read(file, text + length, sizeof(text) - 1 - length)) > 0;)
    length += std::size_t(got);
  close(file);
  text[length] = '\0';
  const char* line = std::strstr(text, "\nThreads:");
  if (!line) return true;
  line += std::strlen("\nThreads:");
  while (*line == ' ' || *line == '\t') ++line;
  return !(line[0] == '1' && (line[1] == '\n' || line[1] == '\0'));
}
#else
bool other_threads_run() { return true; }
#endif

#if defined(__unix__) || defined(__APPLE__)
[[maybe_unused]] const int fork_handler = pthread_atfork(
    [] { threads_at_fork.store(other_threads_run(), std::memory_order_relaxed); }, nullptr, [] {
      if (teams_started.load(std::memory_order_relaxed) ||
          threads_at_fork.load(std::memory_order_relaxed))
        forked_after_teams.store(true, std::memory_order_relaxed);
    });

// The stack size OpenMP's threads start with when OMP_STACKSIZE (or GNU's GOMP_STACKSIZE) sets
// one: a number with an optional unit B, K, M or G (K without one); 0 for the default.
std::size_t openmp_stack_bytes() {
  for (const char* name : {"OMP_STACKSIZE", "GOMP_STACKSIZE"}) {
    const char* text = std::getenv(name);
    if (!text || !*text) continue;
    char* end = nullptr;
    const unsigned long long number = std::strtoull(text, &end, 10);
    while (*end == ' ') ++end;
    const int shift = *end == 'B' || *end == 'b'   ? 0
                      : *end == 'M' || *end == 'm' ? 20
                      : *end == 'G' || *end == 'g' ? 30
                                                   : 10;
    return std::size_t(number) << shift;
  }
  return 0;
}

void* wait_for_release(void* gate) {
  auto& [mutex, released, open] =
      *static_cast<std::tuple<std::mutex, std::condition_variable, bool>*>(gate);
  std::unique_lock lock(mutex);
  released.wait(lock, [&] { return open; });
  return nullptr;
}

// Whether `count` more threads can run at once now. The OpenMP runtime ends the process when it
// cannot start a thread of a team (libgomp: "Thread creation failed", at a limit on threads or
// on address space, RLIMIT_NPROC or RLIMIT_AS): the core starts as many itself first, with the
// stacks the runtime's would take, and runs on one thread where they do not start. Stopped
// threads' stacks stay in the C library's cache, for the runtime's threads to take.
bool threads_can_start(int count) {
  pthread_attr_t attributes;
  if (pthread_attr_init(&attributes) != 0) return false;
  if (const std::size_t stack = openmp_stack_bytes()) pthread_attr_setstacksize(&attributes, stack);
  std::tuple<std::mutex, std::condition_variable, bool> gate{};
  std::vector<pthread_t> started;
  started.reserve(std::size_t(count));
  for (int i = 0; i < count; ++i) {
    pthread_t thread;
    if (pthread_create(&thread, &attributes, wait_for_release, &gate) != 0) break;
    started.push_back(thread);
  }
  {
    std::lock_guard lock(std::get<0>(gate));
    std::get<2>(gate) = true;
  }
  std::get<1>(gate).notify_all();
  for (pthread_t thread : started) pthread_join(thread, nullptr);
  pthread_attr_destroy(&attributes);
  return started.size() == std::size_t(count);
}
#else
bool threads_can_start(int) { return true; }
#endif

// The largest team the calling thread has started (the OpenMP runtime keeps a pool of threads
// for each thread that starts teams, ready for any team as large again).
thread_local int largest_team_started = 1;

std::atomic<int>& thread_budget() {
  // Eigen never forks threads of its own (EIGEN_DONT_PARALLELIZE): the core splits its
  // products itself (kernels/parallel_product.hpp).
  static std::atomic<int> budget{default_threads()};
  return budget;
}

// Below this many flops a step finishes in a few microseconds, the cost of one barrier.
constexpr double kMinStepFlopsToSplit = 2.0e6;
// Below this many flops a step's shares run less efficiently than the whole step, and two threads
// pipeline the chunks. On 2 threads (AMD EPYC Zen 3, family 25 model 1), against the steps shared:
// the layer 6-14% faster and the whole model 2-15% at batch 32 and hidden 256 (4.2 MFLOP a step),
// 5% at batch 64 (8.4), the whole model 9-13% at batch 16 and hidden 512 (8.4); from 16.8 MFLOP
// mixed (the whole model 12-18% slower at batch 128 and hidden 512), and the layer at hidden 1024
// 20% slower (its forward pass waits for the steps).
constexpr double kMaxPipelinedStepFlops = 1.6e7;
// A whole-sequence product this small takes tens of microseconds: not worth a fork and join.
constexpr double kMinProductFlopsToSplit = 4.0e6;
constexpr Index kMinRowsPerThread = 16;
// A step shared by rows gives each thread whole register blocks of the product kernel's rows
// (Eigen's nr, 4 on x86), at least one; a split whose largest share is more than an eighth
// above the mean would leave the other threads waiting, and the step is shared by columns.
constexpr Index kStepRowBlock = 4;
constexpr Index kMaxStepRowShareEighths = 9;  // of the mean share
// W up to this many times a core's L2 cache: on 2 threads (AMD Zen 3, 512 KiB of L2), shares
// by rows took 2-13% less time by medians at batch 8 to 128 and hidden 256 and 512 (W 256 KiB
// and 1 MiB), the same at 384, and up to 10% more at 1024 (4 MiB).
constexpr std::size_t kRowSharedWeightsPerL2 = 2;
// Narrower column shares than this make the packed product inefficient.
constexpr Index kMinColumnsPerThread = 64;
constexpr Index kColumnAlignment = 16;

// A core's L2 cache (bytes), as the operating system reports it, or 512 KiB where it does not.
std::size_t l2_cache_bytes() {
  static const std::size_t bytes = [] {
#ifdef _SC_LEVEL2_CACHE_SIZE
    const long reported = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (reported > 0) return std::size_t(reported);
#endif
    return std::size_t(512) << 10;
  }();
  return bytes;
}

// The flops of one per-step product (batch × hidden)·(hidden × hidden).
double step_flops(Index batch, Index hidden) {
  return 2.0 * double(batch) * double(hidden) * double(hidden);
}

// The largest W (hidden² scalars, in bytes) whose steps a team shares by rows. Every thread then
// reads all of W each step: that pays while W stays near a core, in its L2 cache or not far
// beyond; a larger W is read from the shared L3 cache, where a thread's share of the columns
// costs it less.
std::size_t largest_weights_shared_by_rows() {
  return kRowSharedWeightsPerL2 * l2_cache_bytes();
}

}  // namespace

void set_num_threads(int threads) { thread_budget().store(std::clamp(threads, 1, kMaxThreads)); }

int get_num_threads() {
  return forked_after_teams.load(std::memory_order_relaxed) ? 1 : thread_budget().load();
}

int free_threads() {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;
#endif
  if (forked_after_teams.load(std::memory_order_relaxed)) return 1;
  const int threads = get_num_threads();
  if (threads > largest_team_started) {
    if (!threads_can_start(threads - 1)) return 1;  // the same bits, on the calling thread
    largest_team_started = threads;
  }
  // Every team the core starts asks this first: a team may start from here on.
  if (threads > 1 && !teams_started.load(std::memory_order_relaxed))
    teams_started.store(true, std::memory_order_relaxed);
  return threads;
}

bool step_stays_on_one_thread(Index batch, Index hidden) {
  return step_flops(batch, hidden) < kMinStepFlopsToSplit;
}

bool steps_pipeline(Index batch, Index hidden) {
  return step_flops(batch, hidden) < kMaxPipelinedStepFlops;
}

std::string step_shares_rule() {
  return "pipelined below " + std::to_string(int(kMaxPipelinedStepFlops / 1e6)) +
         " MFLOP a step (2·batch·hidden²): one thread runs the steps of a recurrence's chunks, "
         "another follows; otherwise, from " + std::to_string(int(kMinStepFlopsToSplit / 1e6)) +
         " MFLOP a step, each step shared by rows (whole blocks of " +
         std::to_string(kStepRowBlock) +
         " sequences, the largest share at most " + std::to_string(kMaxStepRowShareEighths) +
         "/8 of the mean) where hidden² scalars take at most " +
         std::to_string(largest_weights_shared_by_rows()) + " bytes (" +
         std::to_string(kRowSharedWeightsPerL2) + " × the L2 cache's " +
         std::to_string(l2_cache_bytes()) + "), by columns otherwise";
}

StepShares recurrence_shares(Index batch, Index hidden, std::size_t scalar_bytes) {
  if (step_stays_on_one_thread(batch, hidden)) return {};
  const int threads = free_threads();
  const Index blocks = (batch + kStepRowBlock - 1) / kStepRowBlock;
  const Index by_rows = std::min<Index>(threads, blocks);
  const Index largest_share = (blocks + by_rows - 1) / by_rows * kStepRowBlock;
  const bool balanced = 8 * largest_share * by_rows <= kMaxStepRowShareEighths * batch;
  const bool weights_near = std::size_t(hidden) * std::size_t(hidden) * scalar_bytes <=
                            largest_weights_shared_by_rows();
  if (by_rows > 1 && balanced && weights_near) return {int(by_rows), true};
  const Index by_width = std::max<Index>(1, hidden / kMinColumnsPerThread);
  return {int(std::min<Index>(threads, by_width)), false};
}

int product_threads(double flops, Index rows) {
  if (flops < kMinProductFlopsToSplit) return 1;
  return int(std::min<Index>(free_threads(), std::max<Index>(1, rows / kMinRowsPerThread)));
}

std::pair<Index, Index> row_share(Index rows, int thread, int threads, Index alignment) {
  const Index blocks = (rows + alignment - 1) / alignment;
  const Index first = std::min(rows, blocks * thread / threads * alignment);
  const Index last = std::min(rows, blocks * (thread + 1) / threads * alignment);
  return {first, last};
}

std::pair<Index, Index> column_share(Index width, int thread, int threads, Index alignment) {
  return row_share(width, thread, threads, std::lcm(alignment, kColumnAlignment));
}

int this_thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

int this_region_threads() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

}  // namespace bptt
