// `bptt train`'s whole step in one call of the core (bptt/training_step.hpp), for a training loop
// whose vectors stay the same from step to step: they are checked once, when the step is made,
// and each call checks only the chunk it is given.
#pragma once

#include <pybind11/pybind11.h>

namespace bptt::bindings {

void bind_training_step(pybind11::module_& module);

}  // namespace bptt::bindings
