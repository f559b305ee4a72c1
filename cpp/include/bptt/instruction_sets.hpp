// The core's kernels are compiled once per instruction set (x86-64: "baseline", "avx2" for
// x86-64-v3, "avx512" for x86-64-v4); every public function runs the best set this CPU
// supports, or the one the environment variable BPTT_INSTRUCTION_SET names (float64's from the
// best set below it that has them, where that set has none: BuildInfo).
#pragma once

#include <string>
#include <vector>

namespace bptt {

// The instruction sets this build has kernels for and this CPU (and its operating system) can
// run, best last.
std::vector<std::string> available_instruction_sets();

// The set the core runs. Throws std::invalid_argument when BPTT_INSTRUCTION_SET names a set
// that is not available.
std::string instruction_set();

struct BuildInfo {
  std::string instruction_set;  // as instruction_set()
  // The set whose float64 kernels run: instruction_set(), but for AVX-512, whose builds leave
  // float64 to the AVX2 kernels (float64 is the accuracy path, and its AVX-512 kernels would
  // cost every build a seventh of its compile time).
  std::string float64_instruction_set;
  std::string simd;             // the vector instructions its kernels use, as Eigen names them
  std::string eigen_version;
  std::string compiler;
  bool openmp;
  // How products with bfloat16 operands (bptt/types.hpp) run here.
  std::string bfloat16_products;
  // How a team of threads shares each step of a recurrence here: chosen from the L2 cache.
  std::string step_shares;
};
BuildInfo build_info();

}  // namespace bptt
