// The whole-sequence products (parallel_product.hpp) for double.
#include "parallel_product_definitions.hpp"
#include "scalars.hpp"

#if BPTT_FLOAT64_KERNELS
namespace bptt::BPTT_ISA_NAMESPACE {

BPTT_DEFINE_PRODUCTS(double)

}  // namespace bptt::BPTT_ISA_NAMESPACE
#endif
