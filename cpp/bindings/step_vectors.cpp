#include "step_vectors.hpp"

#include <string>
#include <utility>
#include <vector>

namespace bptt::bindings {

py::array vector_argument(py::handle object, const char* name, bool writable) {
  if (!py::isinstance<py::array>(object)) {
    throw py::type_error(std::string(name) + ": expected a NumPy array, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))));
  }
  auto array = py::reinterpret_borrow<py::array>(object);
  if (array.ndim() != 1) {
    throw py::value_error(std::string(name) + ": expected a vector (1 axis), got shape " +
                          shape_string(array));
  }
  if (!is_c_contiguous_and_aligned(array)) {
    if (!(array.flags() & py::array::c_style)) {
      throw py::value_error(std::string(name) + ": expected a contiguous vector, got strides " +
                            std::string(py::str(array.attr("strides"))));
    }
    throw py::value_error(std::string(name) +
                          ": expected a vector aligned for its dtype, got a misaligned one");
  }
  // NumPy spells native order '=' ('|' where order does not apply); asked only otherwise.
  const char order = array.dtype().byteorder();
  if (order != '=' && order != '|' && !array.dtype().attr("isnative").cast<bool>()) {
    throw py::value_error(std::string(name) + ": expected native byte order, got dtype " +
                          std::string(py::str(array.dtype())));
  }
  if (writable && !array.writeable()) {
    throw py::value_error(std::string(name) + ": expected a writable vector, updated in place");
  }
  return array;
}

StepVectors::StepVectors(py::handle param_object, py::handle grad_object,
                         std::initializer_list<std::pair<const char*, py::handle>> state_objects,
                         bool grad_written)
    : param(vector_argument(param_object, "param", true)) {
  dtype = parameter_dtype(param, "param");
  size = param.shape(0);
  grad = like_param(grad_object, "grad", grad_written);
  std::vector<std::pair<const char*, py::array>> named{{"param", param}, {"grad", grad}};
  for (const auto& [name, object] : state_objects) {
    state.push_back(like_param(object, name, true));
    named.emplace_back(name, state.back());
  }
  // The core reads and writes each vector once per element, as if no two overlapped.
  for (size_t i = 0; i < named.size(); ++i)
    for (size_t j = i + 1; j < named.size(); ++j)
      if (share_memory(named[i].second, named[j].second))
        throw py::value_error(std::string(named[j].first) +
                              ": expected a vector of its own, got one sharing memory with " +
                              named[i].first);
}

py::array StepVectors::like_param(py::handle object, const char* name, bool writable) const {
  py::array array = vector_argument(object, name, writable);
  if (parameter_dtype(array, name) != dtype) {
    throw py::type_error(std::string(name) + ": expected dtype " + dtype_name(dtype) +
                         " like param, got " + std::string(py::str(array.dtype())));
  }
  if (array.shape(0) != size) {
    throw py::value_error(std::string(name) + ": expected " + std::to_string(size) +
                          " values like param, got shape " + shape_string(array));
  }
  return array;
}

}  // namespace bptt::bindings
