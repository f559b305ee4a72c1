// bptt._core: the compiled core's Python face. Compiled once, for the baseline instruction set;
// the core chooses its kernels for the CPU (bptt/instruction_sets.hpp).
#include "registration.hpp"

#include "bptt/instruction_sets.hpp"

PYBIND11_MODULE(_core, module) {
  using namespace bptt::bindings;
  module.doc() = "The compiled core of bptt; use the bptt package instead";
  // A BPTT_INSTRUCTION_SET naming no available set fails the import, with the core's message.
  bptt::instruction_set();
  register_model(module);
  register_layer(module);
  register_head(module);
  register_optimizers(module);
  register_training_step(module);
  register_runtime(module);
}
