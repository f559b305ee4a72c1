// The arrays a call writes its gradients into: the caller's, for the names its `out` dict gives
// (so that a training loop can have them land in the flat vector its optimizer steps, with no
// copy), and new ones for the rest.
#pragma once

#include "arguments.hpp"
#include "output_arrays.hpp"

#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace bptt::bindings {

class GradientOutputs {
 public:
  // out: None or a dict whose keys are some of `names`. `read`: the arguments the call reads,
  // by their names in messages; no out array may share memory with them or with another.
  GradientOutputs(py::handle out, std::initializer_list<const char*> names, DType dtype,
                  std::initializer_list<std::pair<const char*, py::handle>> read);

  // The caller's array for `name`, checked against `axes`, or a new one of that shape.
  template <class S>
  py::array_t<S> array(const char* name, std::initializer_list<Axis> axes) {
    if (std::optional<py::array> provided = caller_array(name, axes)) return *provided;
    std::vector<py::ssize_t> shape;
    for (const Axis& axis : axes) shape.push_back(axis.extent);
    return new_array<S>(shape);
  }

 private:
  std::optional<py::array> caller_array(const char* name, std::initializer_list<Axis> axes);

  bool has_out_ = false;
  py::dict out_;
  DType dtype_;
  std::vector<std::pair<std::string, py::array>> taken_;  // read by the call, or out arrays
};

}  // namespace bptt::bindings
