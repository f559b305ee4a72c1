#include "gradient_outputs.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace bptt::bindings {

GradientOutputs::GradientOutputs(py::handle out, std::initializer_list<const char*> names,
                                 DType dtype,
                                 std::initializer_list<std::pair<const char*, py::handle>> read)
    : dtype_(dtype) {
  if (out.is_none()) return;
  if (!py::isinstance<py::dict>(out)) {
    throw py::type_error("out: expected None or a dict of gradient arrays by name, got " +
                         std::string(py::str(py::type::of(out).attr("__name__"))));
  }
  out_ = py::reinterpret_borrow<py::dict>(out);
  has_out_ = true;
  for (const auto& item : out_) {
    const bool known = py::isinstance<py::str>(item.first) &&
                       std::any_of(names.begin(), names.end(), [&](const char* name) {
                         return item.first.cast<std::string>() == name;
                       });
    if (!known) {
      std::string expected;
      for (const char* name : names) expected += (expected.empty() ? "" : ", ") + std::string(name);
      throw py::value_error("out: unexpected key " + std::string(py::repr(item.first)) +
                            "; expected some of the gradients this call returns: " + expected);
    }
  }
  for (const auto& [name, object] : read) {
    if (py::isinstance<py::array>(object)) {
      taken_.emplace_back(name, py::reinterpret_borrow<py::array>(object));
    } else if (PyObject_CheckBuffer(object.ptr())) {
      // A memoryview or another buffer: NumPy's view of it holds the caller's memory the core
      // reads.
      if (py::array view = py::array::ensure(object)) taken_.emplace_back(name, view);
    }
  }
}

std::optional<py::array> GradientOutputs::caller_array(const char* name,
                                                      std::initializer_list<Axis> axes) {
  if (!has_out_ || !out_.contains(name)) return std::nullopt;
  const std::string label = "out['" + std::string(name) + "']";
  const py::handle object = out_[name];
  if (!py::isinstance<py::array>(object)) {
    throw py::type_error(label + ": expected a NumPy array, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))));
  }
  auto array = py::reinterpret_borrow<py::array>(object);
  const py::dtype expected_dtype =
      dtype_ == DType::float32 ? py::dtype::of<float>() : py::dtype::of<double>();
  if (!array.dtype().is(expected_dtype)) {
    throw py::type_error(label + ": expected dtype " + dtype_name(dtype_) +
                         " like the params, got " + std::string(py::str(array.dtype())));
  }
  check_shape(array, label.c_str(), axes);
  if (!is_c_contiguous_and_aligned(array) || !array.writeable()) {
    throw py::value_error(label + ": expected a writable, C-contiguous, aligned array, which "
                                  "the core writes in place");
  }
  for (const auto& [other_name, other] : taken_) {
    if (share_memory(array, other)) {
      throw py::value_error(label + ": expected memory of its own, got an array sharing memory "
                                    "with " + other_name);
    }
  }
  taken_.emplace_back(label, array);
  return array;
}

bool GradientOutputs::aligned_like_new_arrays(const py::array& array) {
  return array.size() == 0 ||
         reinterpret_cast<std::uintptr_t>(array.data()) % kOutputAlignment == 0;
}

double GradientOutputs::staged_bytes() const {
  double bytes = 0;
  if (!has_out_) return bytes;
  for (const auto& item : out_) {
    if (!py::isinstance<py::array>(item.second)) continue;  // refused by array()
    const auto array = py::reinterpret_borrow<py::array>(item.second);
    if (!aligned_like_new_arrays(array)) bytes += double(array.nbytes());
  }
  return bytes;
}

void GradientOutputs::deliver(py::dict& grads) {
  for (Staged& staged : staged_) {
    std::memcpy(staged.caller.mutable_data(), staged.written.data(),
                std::size_t(staged.written.nbytes()));
  }
  for (const auto& [name, caller] : given_) grads[name] = caller;
}

}  // namespace bptt::bindings
