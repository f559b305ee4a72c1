// The scratch memory the core keeps between calls (a fresh buffer of megabytes is page-faulted
// in on first touch, which at the medium benchmark size cost about a sixth of a call).
#pragma once

#include <cstddef>

namespace bptt {

// Frees the scratch blocks the calling thread keeps; returns how many bytes that was.
std::size_t release_scratch();

}  // namespace bptt
