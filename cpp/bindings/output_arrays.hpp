// The NumPy arrays the core writes its results into. Their memory is kept for reuse once NumPy
// frees them: a fresh block of megabytes comes from the kernel one zeroed page at a time, on
// first touch, and at the medium benchmark size those page faults of the outputs cost about a
// tenth of a call. Blocks of 64 KiB and more are kept, up to 64 MiB in all; smaller results
// are NumPy's own.
#pragma once

#include <pybind11/numpy.h>

#include <cstddef>
#include <initializer_list>
#include <vector>

namespace bptt::bindings {

namespace py = pybind11;

// Uninitialized storage of `bytes` starting on a 64-byte boundary, and the object that owns it
// for the array. From 64 KiB, a kept block, handed back when NumPy frees the array and exported
// as a writable buffer, so that NumPy lets a result made read-only be made writable again, as it
// does for memory it owns; smaller, NumPy's own memory (the allocator's free lists keep it paged
// in already, and the kept blocks' bookkeeping would cost more than it saves).
py::object output_storage(std::size_t bytes, void** data);
constexpr std::size_t kOutputAlignment = 64;

// Registers the owner's type with the module (once, at import).
void bind_output_blocks(py::module_& module);

// Frees the kept output blocks (of arrays already freed); returns how many bytes that was.
std::size_t release_kept_outputs();

// A new C-ordered array whose data starts on a 64-byte boundary: Eigen's vectorised loops split
// a row into a scalar head and packets by its address, and a fixed split is what makes two calls
// bitwise equal (and the same whether the core writes into its own buffers or into these).
template <class S>
py::array_t<S> new_array(const std::vector<py::ssize_t>& shape) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(S);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape[i];
  }
  void* data = nullptr;
  const py::object owner = output_storage(std::size_t(stride), &data);
  return py::array_t<S>(shape, strides, static_cast<S*>(data), owner);
}
template <class S>
py::array_t<S> new_array(std::initializer_list<py::ssize_t> shape) {
  return new_array<S>(std::vector<py::ssize_t>(shape));
}

}  // namespace bptt::bindings
