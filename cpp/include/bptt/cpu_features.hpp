// Which of the kernel builds this CPU (and its operating system) can run.
#pragma once

#include <string>
#include <vector>

namespace bptt {

// Names of the instruction sets the kernels are built for, best last, that this CPU supports:
// "baseline" (x86-64 or the platform's default), "avx2" (x86-64-v3: AVX2, FMA, BMI2, F16C),
// "avx512" (x86-64-v4: AVX-512 F, BW, CD, DQ, VL).
std::vector<std::string> supported_instruction_sets();

}  // namespace bptt
