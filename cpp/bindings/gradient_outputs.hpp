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

  // The array the core writes the gradient `name` into, checked against `axes`: the caller's,
  // or a new one of that shape. The kernels' vector loops start where the memory is aligned, so
  // a caller's array that is not aligned like a new one would receive other bits: the core
  // writes a new one, which deliver() copies into it.
  template <class S>
  py::array_t<S> array(const char* name, std::initializer_list<Axis> axes) {
    std::optional<py::array> provided = caller_array(name, axes);
    if (provided) given_.push_back({name, *provided});
    if (provided && aligned_like_new_arrays(*provided)) return *provided;
    std::vector<py::ssize_t> shape;
    for (const Axis& axis : axes) shape.push_back(axis.extent);
    py::array_t<S> written = new_array<S>(shape);
    if (provided) staged_.push_back({name, written, *provided});
    return written;
  }

  // Copies what the core wrote for unaligned caller's arrays into them, and puts the caller's
  // arrays themselves in `grads` (a subclass such as np.memmap, not the ndarray py::array_t
  // made of it).
  void deliver(py::dict& grads);

  // The bytes of the new arrays array() makes for the caller's arrays that are not aligned like
  // them: working memory of the call, which a memory budget counts.
  double staged_bytes() const;

 private:
  struct Staged {
    const char* name;
    py::array written, caller;
  };
  static bool aligned_like_new_arrays(const py::array& array);

  std::optional<py::array> caller_array(const char* name, std::initializer_list<Axis> axes);

  bool has_out_ = false;
  py::dict out_;
  DType dtype_;
  std::vector<std::pair<std::string, py::array>> taken_;  // read by the call, or out arrays
  std::vector<Staged> staged_;
  std::vector<std::pair<const char*, py::array>> given_;  // the caller's, by gradient name
};

}  // namespace bptt::bindings
