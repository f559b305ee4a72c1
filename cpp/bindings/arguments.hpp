// Turns Python arguments into checked views for the core: dtype, shape, contiguity, value ranges
// and finiteness, each failure a Python exception naming the argument.
#pragma once

#include "bptt/finite.hpp"
#include "bptt/types.hpp"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace bptt::bindings {

namespace py = pybind11;

// One expected axis: its symbol in messages and its extent (negative: any extent).
struct Axis {
  const char* symbol;
  py::ssize_t extent;
};

std::string shape_string(const py::array& array);
void check_shape(const py::array& array, const char* name, std::initializer_list<Axis> axes);

enum class DType { float32, float64 };
const char* dtype_name(DType dtype);

// The float dtype that the parameter `name` sets for the call; a TypeError unless float32 or
// float64.
DType parameter_dtype(const py::array& array, const char* name);

// A string argument such as activation or reduction; a TypeError naming it otherwise.
std::string string_argument(py::handle object, const char* name);

bool is_integer_array(const py::array& array);
bool is_float_array(const py::array& array);

// A C-contiguous, aligned, native-byte-order array of `dtype` (copied only when the layout
// demands it); a TypeError naming `name` and what was expected (`like`) when the dtype differs.
py::array float_array(py::handle object, const char* name, DType dtype, const char* like);
// C-contiguous int64 ids from any integer array; a TypeError otherwise. `noun`: what one value
// is called in errors.
py::array id_array(const py::array& array, const char* name, const char* what,
                   const char* noun = "id");

// Values in memory of the call's own: a copy when `ids` is the caller's `argument` itself, which
// another thread could change while the core, without the GIL, loops by them (lengths). Check
// the range of what this returns. (Token and class ids are checked again where they are used.)
py::array private_ids(py::handle argument, const py::array& ids, const char* name);

py::array as_array(py::handle object, const char* name);

// C-contiguous and aligned for its dtype, as NumPy's flags say: the layout the core reads.
bool is_c_contiguous_and_aligned(const py::array& array);

// Whether two arrays' memory overlaps, each taken from the lowest to the highest byte any of its
// elements occupies, whatever the strides; an empty array shares none.
bool share_memory(const py::array& a, const py::array& b);

// Every id in [lowest, upper); otherwise a ValueError naming the first bad id and its (t, b).
void check_id_range(const py::array& ids, const char* name, std::int64_t lowest,
                    std::int64_t upper, const char* bound_symbol);

template <class S>
const S* data(const py::array& array) {
  return static_cast<const S*>(array.data());
}

// The name of the first array holding NaN or ±inf, or null; safe without the GIL.
struct FiniteCheck {
  const char* name;
  const void* data;
  py::ssize_t size;
};
template <class S>
const char* first_non_finite(const std::vector<FiniteCheck>& checks) {
  for (const auto& check : checks) {
    if (!check.data) continue;
    if (!all_finite(static_cast<const S*>(check.data), Index(check.size))) return check.name;
  }
  return nullptr;
}

// Calls compute(S{}) with S the C++ type of `dtype`: the one place where a call branches on the
// parameters' dtype.
template <class Compute>
decltype(auto) with_scalar_type(DType dtype, Compute&& compute) {
  if (dtype == DType::float32) return compute(float{});
  return compute(double{});
}

}  // namespace bptt::bindings
