// The finiteness check of the bindings' arguments (bptt/finite.hpp), vectorized.
#include "entry_points.hpp"
#include "matrix_views.hpp"
#include "scalars.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
bool all_finite(const S* values, Index size) {
  if (size == 0) return true;
  const Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>> array(values, size);
  // One vectorized pass: x·0 is 0 for every finite x and NaN for NaN and ±inf.
  return (array * S(0)).sum() == S(0);
}

#define BPTT_INSTANTIATE(S) template bool all_finite<S>(const S*, Index);
BPTT_FOR_EACH_SCALAR(BPTT_INSTANTIATE)
#undef BPTT_INSTANTIATE

}  // namespace bptt::BPTT_ISA_NAMESPACE
