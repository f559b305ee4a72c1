// The finiteness check of the bindings' arguments (bptt/finite.hpp), vectorized.
#include "entry_points.hpp"
#include "matrix_views.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

template <class S>
bool all_finite(const S* values, Index size) {
  if (size == 0) return true;
  const Eigen::Map<const Eigen::Array<S, Eigen::Dynamic, 1>> array(values, size);
  // One vectorized pass: x·0 is 0 for every finite x and NaN for NaN and ±inf.
  return (array * S(0)).sum() == S(0);
}

template bool all_finite<float>(const float*, Index);
template bool all_finite<double>(const double*, Index);

}  // namespace bptt::BPTT_ISA_NAMESPACE
