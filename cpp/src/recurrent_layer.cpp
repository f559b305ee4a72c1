#include "bptt/recurrent_layer.hpp"

namespace bptt {
inline namespace BPTT_ISA_NAMESPACE {

BPTT_DECLARE_RECURRENT_LAYER(float, )
BPTT_DECLARE_RECURRENT_LAYER(double, )

}  // namespace BPTT_ISA_NAMESPACE
}  // namespace bptt
