// The finiteness check the bindings run on every argument before a call.
#pragma once

#include "bptt/types.hpp"

namespace bptt {

// Whether all `size` values are finite (no NaN, no ±infinity).
template <class S>
bool all_finite(const S* values, Index size);

}  // namespace bptt
