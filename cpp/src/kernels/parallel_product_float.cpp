// The whole-sequence products (parallel_product.hpp) for float.
#include "parallel_product_definitions.hpp"

namespace bptt::BPTT_ISA_NAMESPACE {

BPTT_DEFINE_PRODUCTS(float)

}  // namespace bptt::BPTT_ISA_NAMESPACE
