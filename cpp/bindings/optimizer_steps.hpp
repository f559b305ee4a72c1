// The optimizer steps of the core (bptt/optimizer_steps.hpp) for bptt.optimizers: updates in
// place on NumPy vectors, each argument checked and never copied.
#pragma once

#include <pybind11/pybind11.h>

namespace bptt::bindings {

void bind_optimizer_steps(pybind11::module_& module);

}  // namespace bptt::bindings
