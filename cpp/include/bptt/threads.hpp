// The thread budget of the core: how many threads a call may use.
#pragma once

namespace bptt {

// More threads than this is never useful on one machine, and asking OpenMP for tens of
// thousands can fail inside the runtime, which cannot report it.
constexpr int kMaxThreads = 1024;

// A process forked after the core ran a team of threads computes on one thread (the threading
// runtime does not survive fork); get_num_threads() then says 1.
void set_num_threads(int threads);  // clamped to [1, kMaxThreads]
int get_num_threads();

}  // namespace bptt
