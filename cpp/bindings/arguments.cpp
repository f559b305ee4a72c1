#include "arguments.hpp"

#include "bptt/available_memory.hpp"

#include <cstdint>
#include <sstream>
#include <utility>

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

constexpr int kNumpyAligned = 0x0100;  // NPY_ARRAY_ALIGNED

std::string dims_string(const std::vector<py::ssize_t>& dims) {
  std::ostringstream out;
  out << '(';
  for (size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
  out << (dims.size() == 1 ? ",)" : ")");
  return out.str();
}

// The bytes [first, last) the elements of `array` occupy.
std::pair<const char*, const char*> byte_range(const py::array& array) {
  const char* first = static_cast<const char*>(array.data());
  const char* last = first;
  if (array.size() == 0) return {first, first};
  for (py::ssize_t axis = 0; axis < array.ndim(); ++axis) {
    const py::ssize_t reach = (array.shape(axis) - 1) * array.strides(axis);
    (reach < 0 ? first : last) += reach;
  }
  return {first, last + array.itemsize()};
}

// Refuses, as MemoryError, a copy of `count` elements of `itemsize` bytes that the memory
// available cannot hold, before it is made (a broadcast array's copy can be vast).
void check_copy(double count, py::ssize_t itemsize, const char* name) {
  check_allocation(count * double(itemsize), (std::string(name) + "'s copy").c_str());
}

py::array contiguous(const py::array& array, const char* name) {
  if (is_c_contiguous_and_aligned(array)) return array;
  check_copy(double(array.size()), array.itemsize(), name);
  return py::module_::import("numpy").attr("ascontiguousarray")(array);
}

}  // namespace

std::string shape_string(const py::array& array) {
  return dims_string(std::vector<py::ssize_t>(array.shape(), array.shape() + array.ndim()));
}

void check_shape(const py::array& array, const char* name, std::initializer_list<Axis> axes) {
  bool ok = array.ndim() == py::ssize_t(axes.size());
  py::ssize_t i = 0;
  for (const Axis& axis : axes) {
    if (ok && axis.extent >= 0 && array.shape(i) != axis.extent) ok = false;
    ++i;
  }
  if (ok) return;
  // "(H, H) = (5, 5)" when every extent is known, "(T, B, D) with D = 4" when some are.
  std::ostringstream symbols, extents, known;
  bool all_known = true;
  i = 0;
  for (const Axis& axis : axes) {
    symbols << (i ? ", " : "") << axis.symbol;
    extents << (i ? ", " : "") << axis.extent;
    all_known = all_known && axis.extent >= 0;
    if (axis.extent >= 0 && known.str().find(std::string(axis.symbol) + " =") == std::string::npos)
      known << (known.tellp() > 0 ? ", " : "") << axis.symbol << " = " << axis.extent;
    ++i;
  }
  const char* close = axes.size() == 1 ? ",)" : ")";
  std::ostringstream message;
  message << name << ": expected shape (" << symbols.str() << close;
  if (all_known) message << " = (" << extents.str() << close;
  else if (known.tellp() > 0) message << " with " << known.str();
  message << ", got " << shape_string(array);
  throw py::value_error(message.str());
}

const char* dtype_name(DType dtype) { return dtype == DType::float32 ? "float32" : "float64"; }

bool is_integer_array(const py::array& array) {
  const char kind = array.dtype().kind();
  return kind == 'i' || kind == 'u';
}

bool is_float_array(const py::array& array) { return array.dtype().kind() == 'f'; }

bool is_c_contiguous_and_aligned(const py::array& array) {
  return (array.flags() & py::array::c_style) && (array.flags() & kNumpyAligned);
}

bool share_memory(const py::array& a, const py::array& b) {
  const auto [a_first, a_last] = byte_range(a);
  const auto [b_first, b_last] = byte_range(b);
  const bool empty = a_first == a_last || b_first == b_last;
  return !empty && a_first < b_last && b_first < a_last;
}

std::string string_argument(py::handle object, const char* name) {
  if (!py::isinstance<py::str>(object)) {
    throw py::type_error(std::string(name) + ": expected a string, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))));
  }
  return object.cast<std::string>();
}

py::array as_array(py::handle object, const char* name) {
  if (py::isinstance<py::array>(object)) return py::reinterpret_borrow<py::array>(object);
  try {
    return py::module_::import("numpy").attr("asarray")(object);
  } catch (py::error_already_set& error) {
    // What is not the argument's fault (MemoryError, KeyboardInterrupt) goes on as it is; NumPy's
    // TypeError or ValueError (ragged nested lists) is said again naming the argument.
    const bool value_error = error.matches(PyExc_ValueError);
    if (!value_error && !error.matches(PyExc_TypeError)) throw;
    const std::string message = std::string(name) + ": expected an array, got " +
                                std::string(py::str(py::type::of(object).attr("__name__"))) +
                                ": " + std::string(py::str(error.value()));
    if (value_error) throw py::value_error(message);
    throw py::type_error(message);
  }
}

DType parameter_dtype(const py::array& array, const char* name) {
  if (array.dtype().kind() == 'f' && array.dtype().itemsize() == 4) return DType::float32;
  if (array.dtype().kind() == 'f' && array.dtype().itemsize() == 8) return DType::float64;
  throw py::type_error(std::string(name) + ": expected dtype float32 or float64, got " +
                       std::string(py::str(array.dtype())));
}

py::array float_array(py::handle object, const char* name, DType dtype, const char* like) {
  py::array array = as_array(object, name);
  const py::dtype expected = dtype == DType::float32 ? py::dtype::of<float>() : py::dtype::of<double>();
  if (array.dtype().is(expected)) return contiguous(array, name);
  if (array.dtype().kind() == 'f' && array.dtype().itemsize() == expected.itemsize()) {
    // The same numbers in the other byte order.
    check_copy(double(array.size()), expected.itemsize(), name);
    return py::module_::import("numpy").attr("ascontiguousarray")(array, "dtype"_a = expected);
  }
  throw py::type_error(std::string(name) + ": expected dtype " + dtype_name(dtype) + " " + like +
                       ", got " + std::string(py::str(array.dtype())));
}

py::array id_array(const py::array& array, const char* name, const char* what,
                   const char* noun) {
  if (!is_integer_array(array)) {
    throw py::type_error(std::string(name) + ": expected " + what + ", got dtype " +
                         std::string(py::str(array.dtype())));
  }
  if (array.dtype().is(py::dtype::of<std::int64_t>())) return contiguous(array, name);
  const py::module_ numpy = py::module_::import("numpy");
  check_copy(double(array.size()), sizeof(std::int64_t), name);
  py::array converted = numpy.attr("ascontiguousarray")(array, "dtype"_a = "int64");
  if (array.dtype().kind() == 'u' && array.dtype().itemsize() >= 8) {
    // The conversion wraps values above 2**63 - 1 around to negative ones, 2**64 - 1 to the
    // "no target" id -1: found in the copy, which is what the call reads (the caller's array
    // may be changing), and quoted as the caller's unsigned value.
    const py::object wrapped = converted.attr("__lt__")(0);
    if (wrapped.attr("any")().cast<bool>()) {
      const py::tuple at =
          numpy.attr("unravel_index")(numpy.attr("argmax")(wrapped), converted.attr("shape"));
      const py::object value = converted[at].attr("astype")("uint64");
      std::ostringstream message;
      message << name << ": " << noun << " " << std::string(py::str(value)) << " at index (";
      for (size_t i = 0; i < at.size(); ++i) message << (i ? ", " : "") << at[i].cast<long long>();
      message << ") is out of range: larger than 2**63 - 1";
      throw py::value_error(message.str());
    }
  }
  return converted;
}

py::array private_ids(py::handle argument, const py::array& ids, const char* name) {
  const bool callers = py::isinstance<py::array>(argument) &&
                       py::reinterpret_borrow<py::array>(argument).data() == ids.data();
  if (!callers || ids.size() == 0) return ids;
  check_copy(double(ids.size()), sizeof(std::int64_t), name);
  return ids.attr("copy")();
}

void check_id_range(const py::array& ids, const char* name, std::int64_t lowest,
                    std::int64_t upper, const char* bound_symbol) {
  const auto* values = data<std::int64_t>(ids);
  const py::ssize_t count = ids.size();
  const py::ssize_t batch = ids.ndim() >= 2 ? ids.shape(1) : 1;
  for (py::ssize_t i = 0; i < count; ++i) {
    // read once: the message quotes the value checked, which another thread may be changing
    const std::int64_t id = *static_cast<const volatile std::int64_t*>(values + i);
    if (id >= lowest && id < upper) continue;
    std::ostringstream message;
    message << name << ": id " << id << " at (t=" << i / batch << ", b=" << i % batch
            << ") is out of range: expected " << (lowest < 0 ? "-1 or " : "") << "0 <= id < "
            << bound_symbol << " = " << upper;
    throw py::value_error(message.str());
  }
}

}  // namespace bptt::bindings
