// bptt._core.layer_forward and layer_backward: the recurrent layer on its own, forward or
// backward in time, over sequences of equal or given lengths.
#include "model_arguments.hpp"
#include "output_arrays.hpp"
#include "registration.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/recurrent_layer.hpp"

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

template <class S>
py::array layer_forward_typed(const Layer& layer, const Inputs& inputs, const py::object& h0,
                              Activation activation, bool check_finite) {
  const py::ssize_t T = inputs.steps, B = inputs.batch, H = layer.hidden_size;
  check_allocation(bytes_of({double(T + 1) * B * H, double(layer.input_size) * H}, sizeof(S)),
                   "layer_forward");
  auto states = new_array<S>({T + 1, B, H});
  std::vector<FiniteCheck> checks = parameter_checks(&layer, nullptr);
  if (!inputs.tokens) add_check(checks, "inputs", inputs.array);
  add_check(checks, "h0", h0);
  const LayerWeights<S> weights = layer_weights<S>(layer);
  const SequenceInput<S> input_view = sequence_input<S>(inputs);
  const S* h0_data = optional_data<S>(h0);
  S* states_data = mutable_data<S>(states);
  compute_without_gil<S>(checks, check_finite, [&] {
    recurrent_forward(weights, input_view, h0_data, activation, states_data);
  });
  return std::move(states);
}

py::array layer_forward(py::handle U, py::handle W, py::handle b, py::handle inputs,
                        py::handle h0, py::handle activation, py::handle lengths, bool reverse,
                        bool check_finite, py::handle compute_dtype) {
  const Activation parsed_activation = activation_argument(activation);
  Layer layer = check_layer(U, W, b);
  layer.operands = compute_dtype_argument(compute_dtype, layer.dtype);
  Inputs checked_inputs = check_inputs(inputs, layer);
  check_sequence_layout(checked_inputs, lengths, reverse);
  const py::object checked_h0 = check_state(h0, "h0", layer, checked_inputs.batch);
  return with_scalar_type(layer.dtype, [&](auto scalar) {
    return layer_forward_typed<decltype(scalar)>(layer, checked_inputs, checked_h0,
                                                 parsed_activation, check_finite);
  });
}

template <class S>
py::dict layer_backward_typed(const Layer& layer, const Inputs& inputs, const py::array& hidden,
                              const py::object& h0, const py::object& d_hidden,
                              const py::object& d_h_last, Activation activation,
                              bool check_finite) {
  const py::ssize_t T = inputs.steps, B = inputs.batch, H = layer.hidden_size,
                    D = layer.input_size;
  // The core's work rows (T·B·H), then every gradient returned: dx, dU, dW, db, dh0.
  check_allocation(bytes_of({double(T) * B * H, double(T) * B * D, double(D) * H,
                             double(H) * H + H, double(B) * H},
                            sizeof(S)),
                   "layer_backward");
  auto dU = new_array<S>({H, D}), dW = new_array<S>({H, H}), db = new_array<S>({H});
  auto dh0 = new_array<S>({B, H});
  py::array_t<S> dx = inputs.wants_input_gradient() ? new_array<S>({T, B, D}) : py::array_t<S>();
  std::vector<FiniteCheck> checks = parameter_checks(&layer, nullptr);
  if (!inputs.tokens) add_check(checks, "inputs", inputs.array);
  add_check(checks, "hidden", hidden);
  add_check(checks, "h0", h0);
  add_check(checks, "d_hidden", d_hidden);
  add_check(checks, "d_h_last", d_h_last);
  const LayerWeights<S> weights = layer_weights<S>(layer);
  const SequenceInput<S> input_view = sequence_input<S>(inputs);
  LayerGradients<S> grads{mutable_data<S>(dU), mutable_data<S>(dW), mutable_data<S>(db),
                          mutable_data<S>(dh0)};
  if (inputs.wants_input_gradient()) grads.inputs = mutable_data<S>(dx);
  const S* h0_data = optional_data<S>(h0);
  const S* hidden_data = data<S>(hidden);
  const S* d_hidden_data = optional_data<S>(d_hidden);
  const S* d_h_last_data = optional_data<S>(d_h_last);
  compute_without_gil<S>(checks, check_finite, [&] {
    recurrent_backward(weights, input_view, activation, h0_data, hidden_data, d_hidden_data,
                       d_h_last_data, grads);
  });
  py::dict result("U"_a = dU, "W"_a = dW, "b"_a = db, "h0"_a = dh0);
  if (inputs.wants_input_gradient()) result["x"] = dx;
  return result;
}

py::dict layer_backward(py::handle U, py::handle W, py::handle b, py::handle inputs,
                        py::handle hidden, py::handle h0, py::handle d_hidden,
                        py::handle d_h_last, py::handle activation, py::handle lengths,
                        bool reverse, bool check_finite, bool input_grad,
                        py::handle compute_dtype) {
  const Activation parsed_activation = activation_argument(activation);
  Layer layer = check_layer(U, W, b);
  layer.operands = compute_dtype_argument(compute_dtype, layer.dtype);
  Inputs checked_inputs = check_inputs(inputs, layer);
  check_sequence_layout(checked_inputs, lengths, reverse);
  checked_inputs.input_grad = input_grad;
  const py::ssize_t T = checked_inputs.steps, B = checked_inputs.batch, H = layer.hidden_size;
  py::array checked_hidden = float_array(hidden, "hidden", layer.dtype, "like the params");
  check_shape(checked_hidden, "hidden", {{"T", T}, {"B", B}, {"H", H}});
  py::object checked_d_hidden = py::none();
  if (!d_hidden.is_none()) {
    py::array array = float_array(d_hidden, "d_hidden", layer.dtype, "like the params");
    check_shape(array, "d_hidden", {{"T", T}, {"B", B}, {"H", H}});
    checked_d_hidden = std::move(array);
  }
  const py::object checked_h0 = check_state(h0, "h0", layer, B);
  const py::object checked_d_h_last = check_state(d_h_last, "d_h_last", layer, B);
  return with_scalar_type(layer.dtype, [&](auto scalar) {
    return layer_backward_typed<decltype(scalar)>(layer, checked_inputs, checked_hidden,
                                                  checked_h0, checked_d_hidden,
                                                  checked_d_h_last, parsed_activation,
                                                  check_finite);
  });
}

}  // namespace

void register_layer(py::module_& m) {
  const auto none = py::none();
  m.def("layer_forward", &layer_forward, "U"_a, "W"_a, "b"_a, "inputs"_a, "h0"_a = none,
        "activation"_a = "tanh", "lengths"_a = none, py::arg("reverse").noconvert() = false,
        py::arg("check_finite").noconvert() = true, "compute_dtype"_a = none,
        "States (T + 1, B, H) of the recurrent layer: h0 in slot 0 and h_t in slot t + 1 "
        "(reverse: h_t in slot t and h0 in slot T). With lengths (B,), a padded position keeps "
        "the previous state.");
  m.def("layer_backward", &layer_backward, "U"_a, "W"_a, "b"_a, "inputs"_a, "hidden"_a,
        "h0"_a = none, "d_hidden"_a = none, "d_h_last"_a = none, "activation"_a = "tanh",
        "lengths"_a = none, py::arg("reverse").noconvert() = false,
        py::arg("check_finite").noconvert() = true, py::arg("input_grad").noconvert() = true,
        "compute_dtype"_a = none,
        "Gradients of U, W, b, h0 (and x for float inputs) given the hidden states by time "
        "(T, B, H), dL/dh_t (T, B, H; ignored at padded positions) and dL/dh_T (B, H).");
}

}  // namespace bptt::bindings
