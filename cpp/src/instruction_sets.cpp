// Which instruction set's kernels the core runs: the best one this CPU supports among those the
// build compiled, unless BPTT_INSTRUCTION_SET names another available one.
#include "bptt/instruction_sets.hpp"

#include "thread_shares.hpp"

#include "kernel_sets.hpp"
#include "kernel_table.hpp"

#include <cstdlib>
#include <iterator>
#include <stdexcept>

#define BPTT_DECLARE_KERNEL_TABLE(set) \
  namespace isa_##set {                \
  const KernelTable& kernel_table();   \
  }

namespace bptt {

BPTT_FOR_EACH_KERNEL_SET(BPTT_DECLARE_KERNEL_TABLE)

namespace {

// Whether this CPU and its operating system run the set: "baseline" (x86-64 or the platform's
// default), "avx2" (x86-64-v3: AVX2, FMA, BMI2, F16C), "avx512" (x86-64-v4: AVX-512 F, BW,
// CD, DQ, VL). libgcc's checks include the operating system's support (XGETBV) for the wider
// registers.
bool cpu_supports(const std::string& set) {
  if (set == "baseline") return true;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (set == "avx2") return __builtin_cpu_supports("x86-64-v3");
  if (set == "avx512") return __builtin_cpu_supports("x86-64-v4");
#endif
  return false;
}

// Every instruction set runs bfloat16 operands as floats (kernels/bfloat16.hpp); the CPU's own
// bfloat16 dot products (AVX512-BF16) are reported, but no kernel uses them yet.
std::string bfloat16_products() {
  std::string products = "float32 FMA on bfloat16-rounded operands";
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512bf16")) return products + " (AVX512-BF16 present, unused)";
#endif
  return products + " (no AVX512-BF16)";
}

#define BPTT_KERNEL_SET_ENTRY(set) KernelSet{#set, &isa_##set::kernel_table},
constexpr KernelSet kBuiltSets[] = {BPTT_FOR_EACH_KERNEL_SET(BPTT_KERNEL_SET_ENTRY)};

}  // namespace

KernelTable choose_kernel_table(const std::vector<KernelSet>& sets, const char* requested,
                                const std::function<bool(const std::string&)>& supports) {
  const bool any = !requested || !*requested;
  const KernelSet* chosen = nullptr;
  std::string available;
  for (const KernelSet& set : sets) {
    if (!supports(set.name)) continue;
    available += (available.empty() ? "" : ", ") + std::string(set.name);
    if (any || requested == std::string(set.name)) chosen = &set;
  }
  if (!any && (!chosen || requested != std::string(chosen->name))) {
    throw std::invalid_argument("BPTT_INSTRUCTION_SET: expected one of " + available +
                                " (supported by this CPU and built), got '" + requested + "'");
  }
  if (!chosen) {  // a development build for another CPU (BPTT_INSTRUCTION_SETS)
    std::string built;
    for (const KernelSet& set : sets) built += (built.empty() ? "" : ", ") + std::string(set.name);
    throw std::runtime_error("this build has kernels for " + built +
                             " only, none of which this CPU supports");
  }
  KernelTable table = chosen->table();
  for (auto lower = chosen; !table.float64_instruction_set && lower != sets.data();) {
    --lower;
    const KernelTable& donor = lower->table();
    if (donor.float64_instruction_set && supports(lower->name)) {
      table.f64 = donor.f64;
      table.float64_instruction_set = donor.float64_instruction_set;
    }
  }
  if (!table.float64_instruction_set) {
    throw std::logic_error(std::string("the ") + chosen->name +
                           " kernels have no float64 kernels below them to run with");
  }
  return table;
}

const KernelTable& active_kernels() {
  static const KernelTable table =
      choose_kernel_table({std::begin(kBuiltSets), std::end(kBuiltSets)},
                          std::getenv("BPTT_INSTRUCTION_SET"), cpu_supports);
  return table;
}

std::vector<std::string> available_instruction_sets() {
  std::vector<std::string> sets;
  for (const KernelSet& set : kBuiltSets)
    if (cpu_supports(set.name)) sets.emplace_back(set.name);
  return sets;
}

std::string instruction_set() { return active_kernels().instruction_set; }

BuildInfo build_info() {
  const KernelTable& kernels = active_kernels();
#ifdef _OPENMP
  const bool openmp = true;
#else
  const bool openmp = false;
#endif
  return {kernels.instruction_set,  kernels.float64_instruction_set,
          kernels.simd,             kernels.eigen_version,
          BPTT_COMPILER,            openmp,
          bfloat16_products(),      step_shares_rule()};
}

}  // namespace bptt
