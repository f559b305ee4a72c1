#include "model_arguments.hpp"

#include <string>
#include <utility>

namespace bptt::bindings {

Layer check_layer(py::handle U_object, py::handle W_object, py::handle b_object) {
  py::array U = as_array(U_object, "params['U']");
  const DType dtype = parameter_dtype(U, "params['U']");
  U = float_array(U, "params['U']", dtype, "");
  if (U.ndim() != 2 || U.shape(0) < 1 || U.shape(1) < 1) {
    throw py::value_error("params['U']: expected a 2-d array of shape (H, D) with H, D >= 1, got " +
                          shape_string(U));
  }
  const py::ssize_t H = U.shape(0), D = U.shape(1);
  const char* like = "like params['U']";
  py::array W = float_array(W_object, "params['W']", dtype, like);
  py::array b = float_array(b_object, "params['b']", dtype, like);
  // W square and b of its size, U of another: U's hidden size is the one out of place.
  if (W.ndim() == 2 && W.shape(0) == W.shape(1) && W.shape(0) != H && b.ndim() == 1 &&
      b.shape(0) == W.shape(0))
    check_shape(U, "params['U']", {{"H", W.shape(0)}, {"D", -1}});
  check_shape(W, "params['W']", {{"H", H}, {"H", H}});
  check_shape(b, "params['b']", {{"H", H}});
  return {U, W, b, dtype, H, D};
}

namespace {

// V (O, H) of `dtype` with O >= 1 and H = hidden_size (any H >= 1 when hidden_size < 0), and c.
Head checked_head(py::array V, py::handle c_object, DType dtype, py::ssize_t hidden_size,
                  const char* like) {
  if (V.ndim() != 2 || V.shape(0) < 1 || (hidden_size < 0 && V.shape(1) < 1)) {
    throw py::value_error(std::string("params['V']: expected a 2-d array of shape (O, H) with O") +
                          (hidden_size < 0 ? ", H" : "") + " >= 1, got " + shape_string(V));
  }
  const py::ssize_t H = hidden_size < 0 ? V.shape(1) : hidden_size;
  check_shape(V, "params['V']", {{"O", V.shape(0)}, {"H", H}});
  py::array c = float_array(c_object, "params['c']", dtype, like);
  check_shape(c, "params['c']", {{"O", V.shape(0)}});
  return {V, c, dtype, H, V.shape(0)};
}

}  // namespace

Head check_head(py::handle V_object, py::handle c_object, const Layer& layer) {
  const char* like = "like params['U']";
  return checked_head(float_array(V_object, "params['V']", layer.dtype, like), c_object,
                      layer.dtype, layer.hidden_size, like);
}

Head check_head(py::handle V_object, py::handle c_object) {
  py::array V = as_array(V_object, "params['V']");
  const DType dtype = parameter_dtype(V, "params['V']");
  return checked_head(float_array(V, "params['V']", dtype, ""), c_object, dtype, -1,
                      "like params['V']");
}

Inputs check_inputs(py::handle object, const Layer& layer) {
  py::array array = as_array(object, "inputs");
  if (is_integer_array(array)) {
    array = id_array(array, "inputs", "");
    check_shape(array, "inputs", {{"T", -1}, {"B", -1}});
    check_id_range(array, "inputs", 0, layer.input_size, "D");
    return {array, true, array.shape(0), array.shape(1)};
  }
  if (!is_float_array(array)) {
    throw py::type_error(std::string("inputs: expected ") + dtype_name(layer.dtype) +
                         " vectors or integer token ids, got dtype " +
                         std::string(py::str(array.dtype())));
  }
  array = float_array(array, "inputs", layer.dtype, "like the params (or integer token ids)");
  if (array.ndim() != 3 || array.shape(2) != layer.input_size) {
    // D is params['U']'s: either may be the one in error, so the message names both.
    const std::string D = std::to_string(layer.input_size);
    throw py::value_error("inputs: expected shape (T, B, D) with D = " + D +
                          " (params['U'] is (H, D) = (" + std::to_string(layer.hidden_size) +
                          ", " + D + ")) or integer ids (T, B), got " + shape_string(array));
  }
  return {array, false, array.shape(0), array.shape(1)};
}

void check_sequence_layout(Inputs& inputs, py::handle lengths, bool reverse) {
  inputs.reverse = reverse;
  if (lengths.is_none()) return;
  py::array array = private_ids(
      lengths, id_array(as_array(lengths, "lengths"), "lengths", "integer lengths", "length"),
      "lengths");
  check_shape(array, "lengths", {{"B", inputs.batch}});
  const auto* values = data<std::int64_t>(array);
  for (py::ssize_t b = 0; b < inputs.batch; ++b) {
    if (values[b] < 0 || values[b] > inputs.steps) {
      throw py::value_error("lengths: length " + std::to_string(values[b]) + " of sequence b=" +
                            std::to_string(b) + " is out of range: expected 0 <= length <= T = " +
                            std::to_string(inputs.steps));
    }
  }
  inputs.lengths = std::move(array);
}

py::object check_state(py::handle object, const char* name, const Layer& layer,
                       py::ssize_t batch) {
  if (object.is_none()) return py::none();
  py::array state = float_array(object, name, layer.dtype, "like the params");
  check_shape(state, name, {{"B", batch}, {"H", layer.hidden_size}});
  return std::move(state);
}

TargetArray check_targets(py::handle object, const Head& head, py::ssize_t steps,
                          py::ssize_t batch) {
  py::array array = as_array(object, "targets");
  if (is_integer_array(array)) {
    array = id_array(array, "targets", "");
    check_shape(array, "targets", {{"T", steps}, {"B", batch}});
    check_id_range(array, "targets", -1, head.output_size, "O");
    return {array, true};
  }
  if (!is_float_array(array)) {
    throw py::type_error("targets: expected integer class ids (T, B) or float soft targets "
                         "(T, B, O), got dtype " + std::string(py::str(array.dtype())));
  }
  array = float_array(array, "targets", head.dtype, "like the params (or integer class ids)");
  check_shape(array, "targets", {{"T", steps}, {"B", batch}, {"O", head.output_size}});
  return {array, false};
}

Activation activation_argument(py::handle object) {
  const std::string name = string_argument(object, "activation");
  Activation activation;
  if (!parse_activation(name, activation)) {
    throw py::value_error("activation: expected 'tanh', 'sigmoid', 'relu' or 'identity', got '" +
                          name + "'");
  }
  return activation;
}

ProductOperands compute_dtype_argument(py::handle compute_dtype, DType params_dtype) {
  if (compute_dtype.is_none()) return ProductOperands::native;
  const std::string own = dtype_name(params_dtype);
  if (py::isinstance<py::str>(compute_dtype)) {
    const std::string name = compute_dtype.cast<std::string>();
    if (name == own) return ProductOperands::native;
    if (name == "bfloat16") {
      if (params_dtype == DType::float32) return ProductOperands::bfloat16;
      throw py::value_error("compute_dtype: 'bfloat16' takes float32 parameters, got " + own);
    }
  }
  throw py::value_error("compute_dtype: expected None, 'bfloat16' (with float32 parameters) or '" +
                        own + "' (the parameters' dtype), got " +
                        std::string(py::repr(compute_dtype)));
}

Reduction reduction_argument(py::handle object) {
  const std::string name = string_argument(object, "reduction");
  Reduction reduction;
  if (!parse_reduction(name, reduction)) {
    throw py::value_error("reduction: expected 'sum' or 'mean', got '" + name + "'");
  }
  return reduction;
}

std::vector<FiniteCheck> parameter_checks(const Layer* layer, const Head* head) {
  std::vector<FiniteCheck> checks;
  if (layer) {
    checks.push_back({"params['U']", layer->U.data(), layer->U.size()});
    checks.push_back({"params['W']", layer->W.data(), layer->W.size()});
    checks.push_back({"params['b']", layer->b.data(), layer->b.size()});
  }
  if (head) {
    checks.push_back({"params['V']", head->V.data(), head->V.size()});
    checks.push_back({"params['c']", head->c.data(), head->c.size()});
  }
  return checks;
}

void add_check(std::vector<FiniteCheck>& checks, const char* name, const py::object& array) {
  if (array.is_none()) return;
  const auto a = py::reinterpret_borrow<py::array>(array);
  checks.push_back({name, a.data(), a.size()});
}

std::optional<std::size_t> budget_argument(py::handle object) {
  if (object.is_none()) return std::nullopt;
  if (py::isinstance<py::bool_>(object) || !py::isinstance<py::int_>(object)) {
    throw py::type_error("memory_budget: expected None or an integer number of bytes, got " +
                         std::string(py::str(py::type::of(object).attr("__name__"))));
  }
  const long long bytes = object.cast<long long>();
  if (bytes <= 0) {
    throw py::value_error("memory_budget: expected a positive number of bytes, got " +
                          std::to_string(bytes));
  }
  return std::size_t(bytes);
}

double copied_bytes(std::initializer_list<std::pair<py::handle, py::handle>> checked) {
  double bytes = 0;
  for (const auto& [argument, array] : checked) {
    if (array.is_none()) continue;
    const auto converted = py::reinterpret_borrow<py::array>(array);
    const bool own = py::isinstance<py::array>(argument) &&
                     py::reinterpret_borrow<py::array>(argument).data() == converted.data();
    if (!own) bytes += double(converted.nbytes());
  }
  return bytes;
}

double bytes_of(std::initializer_list<double> counts, std::size_t scalar_bytes) {
  double total = 0;
  for (double count : counts) total += count;
  return total * double(scalar_bytes);
}

}  // namespace bptt::bindings
