// Built without any instruction-set flags, so it is safe to import on every CPU and can tell the
// Python package which kernel module to load.
#include "bptt/cpu_features.hpp"

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

PYBIND11_MODULE(_cpu_features, m) {
  m.doc() = "CPU feature detection for choosing a bptt kernel build";
  m.def("supported_instruction_sets", &bptt::supported_instruction_sets,
        "Instruction sets of the kernel builds that this CPU can run, best last.");
}
