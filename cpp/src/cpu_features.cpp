#include "bptt/cpu_features.hpp"

namespace bptt {

std::vector<std::string> supported_instruction_sets() {
  std::vector<std::string> sets{"baseline"};
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  // libgcc's checks include the operating system's support (XGETBV) for the wider registers.
  __builtin_cpu_init();
  if (__builtin_cpu_supports("x86-64-v3")) sets.emplace_back("avx2");
  if (__builtin_cpu_supports("x86-64-v4")) sets.emplace_back("avx512");
#endif
  return sets;
}

}  // namespace bptt
