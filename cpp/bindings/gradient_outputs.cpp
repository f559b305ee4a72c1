#include "gradient_outputs.hpp"

#include <algorithm>

namespace bptt::bindings {

constexpr int kNumpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

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
    if (py::isinstance<py::array>(object))
      taken_.push_back(extent_of(name, py::reinterpret_borrow<py::array>(object)));
  }
}

GradientOutputs::Extent GradientOutputs::extent_of(std::string name, const py::array& array) {
  // From the lowest to one past the highest byte of any element, whatever the strides' signs.
  const char* begin = static_cast<const char*>(array.data());
  const char* end = begin;
  if (array.size() == 0) return {std::move(name), begin, begin};
  for (py::ssize_t axis = 0; axis < array.ndim(); ++axis) {
    const py::ssize_t reach = (array.shape(axis) - 1) * array.strides(axis);
    (reach < 0 ? begin : end) += reach;
  }
  return {std::move(name), begin, end + array.itemsize()};
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
  const bool c_contiguous = array.flags() & py::array::c_style;
  if (!c_contiguous || !(array.flags() & kNumpyAligned) || !array.writeable()) {
    throw py::value_error(label + ": expected a writable, C-contiguous, aligned array, which "
                                  "the core writes in place");
  }
  Extent extent = extent_of(label, array);
  for (const Extent& other : taken_) {
    const bool empty = extent.begin == extent.end || other.begin == other.end;
    if (!empty && extent.begin < other.end && other.begin < extent.end) {
      throw py::value_error(label + ": expected memory of its own, got an array sharing memory "
                                    "with " + other.name);
    }
  }
  taken_.push_back(std::move(extent));
  return array;
}

}  // namespace bptt::bindings
