// The core's running conditions: its threads, its kept memory, the memory available, and what
// it was built with and runs.
#include "output_arrays.hpp"
#include "registration.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/instruction_sets.hpp"
#include "bptt/scratch.hpp"
#include "bptt/threads.hpp"

#include <pybind11/stl.h>

#include <string>

namespace bptt::bindings {
namespace {

namespace py = pybind11;
using namespace pybind11::literals;

void set_threads(long long threads) {
  if (threads < 1 || threads > kMaxThreads) {
    throw py::value_error("n: expected a thread count in [1, " + std::to_string(kMaxThreads) +
                          "], got " + std::to_string(threads));
  }
  set_num_threads(int(threads));
}

std::size_t release_kept_memory() { return release_scratch() + release_kept_outputs(); }

py::dict information() {
  const BuildInfo info = build_info();
  return py::dict("instruction_set"_a = info.instruction_set,
                  "float64_instruction_set"_a = info.float64_instruction_set,
                  "available_instruction_sets"_a = available_instruction_sets(),
                  "simd"_a = info.simd, "eigen_version"_a = info.eigen_version,
                  "compiler"_a = info.compiler, "openmp"_a = info.openmp,
                  "num_threads"_a = get_num_threads(),
                  "bfloat16_products"_a = info.bfloat16_products,
                  "step_shares"_a = info.step_shares);
}

}  // namespace

void register_runtime(py::module_& m) {
  m.def("set_num_threads", &set_threads, "n"_a);
  m.def("get_num_threads", &get_num_threads);
  m.def("build_info", &information,
        "The instruction set the core runs, the one its float64 kernels run (AVX-512 leaves them "
        "to AVX2), those available (built and supported by this CPU, best last), the vector "
        "instructions, Eigen's version, the compiler, OpenMP, the thread count, how products with "
        "bfloat16 operands run and how threads share each step of a recurrence.");
  m.def("available_memory_bytes", &available_memory_bytes,
        "Free or reclaimable RAM and free swap, the bound of the core's allocation check.");
  m.def("release_scratch", &release_kept_memory,
        "Frees the scratch memory the calling thread keeps between calls, and the kept memory of "
        "result arrays already freed; returns its bytes.");
  bind_output_blocks(m);
}

}  // namespace bptt::bindings
