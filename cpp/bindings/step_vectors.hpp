// The vectors an optimizer step updates in place (the optimizer steps' and the training step's
// arguments), each checked and never copied.
#pragma once

#include "arguments.hpp"

#include <pybind11/pybind11.h>

#include <initializer_list>
#include <utility>
#include <vector>

namespace bptt::bindings {

// A 1-D, C-contiguous, aligned, native-order float vector, taken as it is: the step updates it
// in place (writable) or reads it where it lies, so a copy would be a silent no-op or a waste.
py::array vector_argument(py::handle object, const char* name, bool writable);

// The vectors of one step, checked: param sets the dtype and length every other one must share;
// grad is read (or written, with grad_written), param and the optimizer's state vectors are
// updated in place. No two share memory.
struct StepVectors {
  DType dtype;
  py::ssize_t size;
  py::array param, grad;
  std::vector<py::array> state;

  StepVectors(py::handle param_object, py::handle grad_object,
              std::initializer_list<std::pair<const char*, py::handle>> state_objects,
              bool grad_written = false);

  template <class S>
  S* updated(const py::array& array) const {
    return static_cast<S*>(const_cast<void*>(array.data()));
  }
  template <class S>
  const S* read(const py::array& array) const {
    return static_cast<const S*>(array.data());
  }

 private:
  py::array like_param(py::handle object, const char* name, bool writable) const;
};

}  // namespace bptt::bindings
