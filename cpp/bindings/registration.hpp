// The compiled module bptt._core: each register_* function binds one concept's functions
// (register_<concept>.cpp); module.cpp calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace bptt::bindings {

void register_model(pybind11::module_& module);          // loss_and_grad
void register_layer(pybind11::module_& module);          // layer_forward, layer_backward
void register_head(pybind11::module_& module);           // head_logits, head_loss_and_grad
void register_optimizers(pybind11::module_& module);     // adagrad_step, adam_step, ...
void register_training_step(pybind11::module_& module);  // TrainingStep
void register_runtime(pybind11::module_& module);        // threads, memory, build information

}  // namespace bptt::bindings
