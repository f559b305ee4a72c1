// The NumPy arrays the core writes its results into. Their memory is kept for reuse once NumPy
// frees them: a fresh block of megabytes comes from the kernel one zeroed page at a time, on
// first touch, and at the medium benchmark size those page faults of the outputs cost about a
// tenth of a call. Blocks of 64 KiB and more are kept, up to 64 MiB in all; smaller results
// are NumPy's own.
#pragma once

#include <pybind11/numpy.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace bptt::bindings {

namespace py = pybind11;

constexpr std::size_t kOutputAlignment = 64;
// Smaller results come from NumPy: the allocator's free lists keep them paged in already, and
// the kept blocks' bookkeeping would cost more than it saves.
constexpr std::size_t kMinKeptOutputBytes = std::size_t(64) << 10;

// Uninitialized storage of at least `bytes` (kMinKeptOutputBytes or more) starting on a 64-byte
// boundary, owned by the returned object, which hands it back to the kept blocks when NumPy
// frees the array. The object exports the storage as a writable buffer, so that NumPy lets a
// result made read-only be made writable again, as it does for memory it owns.
py::object kept_output_block(std::size_t bytes, void** data);

// Registers the owner's type with the module (once, at import).
void bind_output_blocks(py::module_& module);

// Frees the kept output blocks (of arrays already freed); returns how many bytes that was.
std::size_t release_kept_outputs();

// A new C-ordered array whose data starts on a 64-byte boundary: Eigen's vectorised loops split
// a row into a scalar head and packets by its address, and a fixed split is what makes two calls
// bitwise equal (and the same whether the core writes into its own buffers or into these).
template <class S>
py::array_t<S> new_array(std::initializer_list<py::ssize_t> shape) {
  std::vector<py::ssize_t> strides(shape.size());
  py::ssize_t stride = sizeof(S);
  for (size_t i = shape.size(); i-- > 0;) {
    strides[i] = stride;
    stride *= shape.begin()[i];
  }
  void* data = nullptr;
  py::object owner;
  if (std::size_t(stride) >= kMinKeptOutputBytes) {
    owner = kept_output_block(std::size_t(stride), &data);
  } else {  // NumPy's own memory, with room to start on the boundary
    py::array_t<std::uint8_t> storage(stride + py::ssize_t(kOutputAlignment));
    const auto address = reinterpret_cast<std::uintptr_t>(storage.mutable_data());
    const auto aligned = (address + kOutputAlignment - 1) / kOutputAlignment * kOutputAlignment;
    data = reinterpret_cast<void*>(aligned);
    owner = std::move(storage);
  }
  return py::array_t<S>(std::vector<py::ssize_t>(shape), strides, static_cast<S*>(data), owner);
}

}  // namespace bptt::bindings
