// The Python face of one kernel build: converts and checks arguments, allocates the NumPy
// outputs that the core writes into, releases the GIL and calls the core. Compiled once per
// instruction set as the module BPTT_MODULE_NAME.
#include "arguments.hpp"
#include "gradient_outputs.hpp"
#include "optimizer_steps.hpp"
#include "output_arrays.hpp"
#include "training_step.hpp"
#include "without_gil.hpp"

#include "bptt/activation.hpp"
#include "bptt/memory_budget.hpp"
#include "bptt/workspace.hpp"
#include "bptt/recurrent_layer.hpp"
#include "bptt/rnn_loss.hpp"
#include "bptt/softmax_head.hpp"
#include "bptt/threads.hpp"

#include <pybind11/stl.h>

#include <string>

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

struct Layer {
  py::array U, W, b;
  DType dtype;
  py::ssize_t hidden_size, input_size;
};

struct Head {
  py::array V, c;
  py::ssize_t output_size;
};

struct Inputs {
  py::array array;
  bool tokens;
  py::ssize_t steps, batch;
  py::object lengths = py::none();  // int64 (batch,) or None
  bool reverse = false;
  bool input_grad = true;  // dL/dx wanted (float inputs only)

  bool wants_input_gradient() const { return !tokens && input_grad; }
};

struct TargetArray {
  py::array array;
  bool ids;
};

Layer check_layer(py::handle U_object, py::handle W_object, py::handle b_object) {
  py::array U = as_array(U_object, "params['U']");
  const DType dtype = parameter_dtype(U, "params['U']");
  U = float_array(U, "params['U']", dtype, "");
  if (U.ndim() != 2 || U.shape(0) < 1 || U.shape(1) < 1) {
    throw py::value_error("params['U']: expected a 2-d array of shape (H, D) with H, D >= 1, got " +
                          shape_string(U));
  }
  const py::ssize_t H = U.shape(0), D = U.shape(1);
  const std::string like = std::string("like params['U']");
  py::array W = float_array(W_object, "params['W']", dtype, like.c_str());
  check_shape(W, "params['W']", {{"H", H}, {"H", H}});
  py::array b = float_array(b_object, "params['b']", dtype, like.c_str());
  check_shape(b, "params['b']", {{"H", H}});
  return {U, W, b, dtype, H, D};
}

Head check_head(py::handle V_object, py::handle c_object, const Layer& layer) {
  py::array V = float_array(V_object, "params['V']", layer.dtype, "like params['U']");
  if (V.ndim() != 2 || V.shape(0) < 1) {
    throw py::value_error("params['V']: expected a 2-d array of shape (O, H) with O >= 1, got " +
                          shape_string(V));
  }
  check_shape(V, "params['V']", {{"O", V.shape(0)}, {"H", layer.hidden_size}});
  py::array c = float_array(c_object, "params['c']", layer.dtype, "like params['U']");
  check_shape(c, "params['c']", {{"O", V.shape(0)}});
  return {V, c, V.shape(0)};
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
    throw py::type_error(std::string("inputs: expected float ") + dtype_name(layer.dtype) +
                         " vectors or integer token ids, got dtype " + std::string(py::str(array.dtype())));
  }
  array = float_array(array, "inputs", layer.dtype, "like the params (or integer token ids)");
  if (array.ndim() != 3) {
    throw py::value_error("inputs: expected shape (T, B, D) with D = " +
                          std::to_string(layer.input_size) + " or integer ids (T, B), got " +
                          shape_string(array));
  }
  check_shape(array, "inputs", {{"T", -1}, {"B", -1}, {"D", layer.input_size}});
  return {array, false, array.shape(0), array.shape(1)};
}

// Per-sequence lengths (each in [0, T]) and the direction of the recurrence.
void check_sequence_layout(Inputs& inputs, py::handle lengths, bool reverse) {
  inputs.reverse = reverse;
  if (lengths.is_none()) return;
  py::array array = id_array(as_array(lengths, "lengths"), "lengths", "integer lengths");
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

py::object check_state(py::handle object, const char* name, const Layer& layer, py::ssize_t batch) {
  if (object.is_none()) return py::none();
  py::array state = float_array(object, name, layer.dtype, "like the params");
  check_shape(state, name, {{"B", batch}, {"H", layer.hidden_size}});
  return std::move(state);
}

TargetArray check_targets(py::handle object, const Layer& layer, const Head& head,
                          py::ssize_t steps, py::ssize_t batch) {
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
  array = float_array(array, "targets", layer.dtype, "like the params (or integer class ids)");
  check_shape(array, "targets", {{"T", steps}, {"B", batch}, {"O", head.output_size}});
  return {array, false};
}

Activation parse_activation_argument(py::handle object) {
  const std::string name = string_argument(object, "activation");
  Activation activation;
  if (!parse_activation(name, activation)) {
    throw py::value_error("activation: expected 'tanh', 'sigmoid', 'relu' or 'identity', got '" +
                          name + "'");
  }
  return activation;
}

Reduction parse_reduction_argument(py::handle object) {
  const std::string name = string_argument(object, "reduction");
  if (name == "sum") return Reduction::sum;
  if (name == "mean") return Reduction::mean;
  throw py::value_error("reduction: expected 'sum' or 'mean', got '" + name + "'");
}

template <class S>
const S* optional_data(const py::object& array) {
  return array.is_none() ? nullptr : data<S>(py::reinterpret_borrow<py::array>(array));
}

template <class S>
S* mutable_data(py::array& array) {
  return static_cast<S*>(array.mutable_data());
}

template <class S>
LayerWeights<S> layer_weights(const Layer& layer) {
  return {data<S>(layer.U), data<S>(layer.W), data<S>(layer.b), layer.input_size,
          layer.hidden_size};
}

template <class S>
HeadWeights<S> head_weights(const Head& head, const Layer& layer) {
  return {data<S>(head.V), data<S>(head.c), layer.hidden_size, head.output_size};
}

template <class S>
SequenceInput<S> sequence_input(const Inputs& inputs) {
  static_assert(sizeof(Index) == sizeof(std::int64_t), "lengths are passed as int64");
  SequenceInput<S> view{inputs.steps, inputs.batch};
  if (inputs.tokens) view.tokens = data<TokenId>(inputs.array);
  else view.dense = data<S>(inputs.array);
  if (!inputs.lengths.is_none())
    view.lengths = reinterpret_cast<const Index*>(data<std::int64_t>(py::reinterpret_borrow<py::array>(inputs.lengths)));
  view.reverse = inputs.reverse;
  return view;
}

template <class S>
std::vector<FiniteCheck> parameter_checks(const Layer& layer, const Head* head) {
  std::vector<FiniteCheck> checks{{"params['U']", layer.U.data(), layer.U.size()},
                                  {"params['W']", layer.W.data(), layer.W.size()},
                                  {"params['b']", layer.b.data(), layer.b.size()}};
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

// Checks finiteness (when asked) and then computes, both without the GIL; raises afterwards.
template <class S, class Compute>
void compute_without_gil(const std::vector<FiniteCheck>& checks, bool check_finite,
                         Compute&& compute) {
  const char* non_finite = nullptr;
  without_gil([&] {
    if (check_finite) non_finite = first_non_finite<S>(checks);
    if (!non_finite) compute();
  });
  if (non_finite) {
    throw py::value_error(std::string(non_finite) +
                          ": expected finite values, found NaN or infinity "
                          "(pass check_finite=False to skip this check)");
  }
}

double bytes_of(std::initializer_list<double> counts, std::size_t scalar_bytes) {
  double total = 0;
  for (double count : counts) total += count;
  return total * double(scalar_bytes);
}

// ---------------------------------------------------------------------------------------------
// The whole model.

template <class S>
py::tuple loss_and_grad_typed(const Layer& layer, const Head& head, const Inputs& inputs,
                              const TargetArray& targets, const py::object& h0,
                              Activation activation, Reduction reduction, bool check_finite,
                              GradientOutputs& outputs) {
  const py::ssize_t T = inputs.steps, B = inputs.batch, H = layer.hidden_size,
                    D = layer.input_size, O = head.output_size;
  const ProblemSize size{T, B, D, H, O};
  check_allocation(double(rnn_loss_and_grad_scratch_bytes(size, sizeof(S))) +
                       bytes_of({double(T) * B * D, double(B) * H}, sizeof(S)),
                   "loss_and_grad");
  auto dU = outputs.array<S>("U", {{"H", H}, {"D", D}});
  auto dW = outputs.array<S>("W", {{"H", H}, {"H", H}});
  auto db = outputs.array<S>("b", {{"H", H}});
  auto dV = outputs.array<S>("V", {{"O", O}, {"H", H}});
  auto dc = outputs.array<S>("c", {{"O", O}});
  auto dh0 = outputs.array<S>("h0", {{"B", B}, {"H", H}});
  auto h_last = new_array<S>({B, H});
  py::array_t<S> dx = inputs.wants_input_gradient()
                          ? outputs.array<S>("x", {{"T", T}, {"B", B}, {"D", D}})
                          : py::array_t<S>();

  std::vector<FiniteCheck> checks = parameter_checks<S>(layer, &head);
  if (!inputs.tokens) add_check(checks, "inputs", inputs.array);
  if (!targets.ids) add_check(checks, "targets", targets.array);
  add_check(checks, "h0", h0);

  const LayerWeights<S> layer_view = layer_weights<S>(layer);
  const HeadWeights<S> head_view = head_weights<S>(head, layer);
  const SequenceInput<S> input_view = sequence_input<S>(inputs);
  Targets<S> target_view;
  if (targets.ids) target_view.ids = data<TokenId>(targets.array);
  else target_view.soft = data<S>(targets.array);
  LayerGradients<S> layer_grads{mutable_data<S>(dU), mutable_data<S>(dW), mutable_data<S>(db),
                                mutable_data<S>(dh0)};
  if (inputs.wants_input_gradient()) layer_grads.inputs = mutable_data<S>(dx);
  const HeadGradients<S> head_grads{mutable_data<S>(dV), mutable_data<S>(dc)};

  double loss = 0.0;
  const S* h0_data = optional_data<S>(h0);
  S* h_last_data = mutable_data<S>(h_last);
  compute_without_gil<S>(checks, check_finite, [&] {
    loss = rnn_loss_and_grad(layer_view, head_view, input_view, target_view, h0_data, activation,
                             reduction, layer_grads, head_grads, h_last_data);
  });
  py::dict grads("U"_a = dU, "W"_a = dW, "b"_a = db, "V"_a = dV, "c"_a = dc, "h0"_a = dh0);
  if (inputs.wants_input_gradient()) grads["x"] = dx;
  return py::make_tuple(loss, grads, h_last);
}

py::tuple loss_and_grad(py::handle U, py::handle W, py::handle b, py::handle V, py::handle c,
                        py::handle inputs, py::handle targets, py::handle h0,
                        py::handle activation, py::handle reduction,
                        bool check_finite, bool input_grad, py::handle out) {
  const Activation parsed_activation = parse_activation_argument(activation);
  const Reduction parsed_reduction = parse_reduction_argument(reduction);
  const Layer layer = check_layer(U, W, b);
  const Head head = check_head(V, c, layer);
  Inputs checked_inputs = check_inputs(inputs, layer);
  checked_inputs.input_grad = input_grad;
  const TargetArray checked_targets =
      check_targets(targets, layer, head, checked_inputs.steps, checked_inputs.batch);
  const py::object checked_h0 = check_state(h0, "h0", layer, checked_inputs.batch);
  GradientOutputs outputs(
      out,
      checked_inputs.wants_input_gradient()
          ? std::initializer_list<const char*>{"U", "W", "b", "V", "c", "h0", "x"}
          : std::initializer_list<const char*>{"U", "W", "b", "V", "c", "h0"},
      layer.dtype,
      {{"params['U']", U}, {"params['W']", W}, {"params['b']", b}, {"params['V']", V},
       {"params['c']", c}, {"inputs", inputs}, {"targets", targets}, {"h0", h0}});
  if (layer.dtype == DType::float32) {
    return loss_and_grad_typed<float>(layer, head, checked_inputs, checked_targets, checked_h0,
                                      parsed_activation, parsed_reduction, check_finite, outputs);
  }
  return loss_and_grad_typed<double>(layer, head, checked_inputs, checked_targets, checked_h0,
                                     parsed_activation, parsed_reduction, check_finite, outputs);
}

// ---------------------------------------------------------------------------------------------
// The recurrent layer alone.

template <class S>
py::array layer_forward_typed(const Layer& layer, const Inputs& inputs, const py::object& h0,
                              Activation activation, bool check_finite) {
  const py::ssize_t T = inputs.steps, B = inputs.batch, H = layer.hidden_size;
  check_allocation(bytes_of({double(T + 1) * B * H, double(layer.input_size) * H}, sizeof(S)),
                   "layer_forward");
  auto hidden = new_array<S>({T + 1, B, H});
  std::vector<FiniteCheck> checks = parameter_checks<S>(layer, nullptr);
  if (!inputs.tokens) add_check(checks, "inputs", inputs.array);
  add_check(checks, "h0", h0);
  const LayerWeights<S> weights = layer_weights<S>(layer);
  const SequenceInput<S> input_view = sequence_input<S>(inputs);
  const S* h0_data = optional_data<S>(h0);
  S* hidden_data = mutable_data<S>(hidden);
  compute_without_gil<S>(checks, check_finite, [&] {
    recurrent_forward(weights, input_view, h0_data, activation, hidden_data);
  });
  return std::move(hidden);
}

py::array layer_forward(py::handle U, py::handle W, py::handle b, py::handle inputs,
                        py::handle h0, py::handle activation, py::handle lengths, bool reverse,
                        bool check_finite) {
  const Activation parsed_activation = parse_activation_argument(activation);
  const Layer layer = check_layer(U, W, b);
  Inputs checked_inputs = check_inputs(inputs, layer);
  check_sequence_layout(checked_inputs, lengths, reverse);
  const py::object checked_h0 = check_state(h0, "h0", layer, checked_inputs.batch);
  if (layer.dtype == DType::float32)
    return layer_forward_typed<float>(layer, checked_inputs, checked_h0, parsed_activation, check_finite);
  return layer_forward_typed<double>(layer, checked_inputs, checked_h0, parsed_activation, check_finite);
}

template <class S>
py::dict layer_backward_typed(const Layer& layer, const Inputs& inputs, const py::array& hidden,
                              const py::object& h0, const py::object& d_hidden,
                              const py::object& d_h_last, Activation activation,
                              bool check_finite) {
  const py::ssize_t T = inputs.steps, B = inputs.batch, H = layer.hidden_size,
                    D = layer.input_size;
  check_allocation(bytes_of({double(T) * B * H, double(T) * B * D, double(D) * H}, sizeof(S)),
                   "layer_backward");
  auto dU = new_array<S>({H, D}), dW = new_array<S>({H, H}), db = new_array<S>({H});
  auto dh0 = new_array<S>({B, H});
  py::array_t<S> dx = inputs.wants_input_gradient() ? new_array<S>({T, B, D}) : py::array_t<S>();
  std::vector<FiniteCheck> checks = parameter_checks<S>(layer, nullptr);
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
                        bool reverse, bool check_finite, bool input_grad) {
  const Activation parsed_activation = parse_activation_argument(activation);
  const Layer layer = check_layer(U, W, b);
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
  if (layer.dtype == DType::float32) {
    return layer_backward_typed<float>(layer, checked_inputs, checked_hidden, checked_h0,
                                       checked_d_hidden, checked_d_h_last, parsed_activation,
                                       check_finite);
  }
  return layer_backward_typed<double>(layer, checked_inputs, checked_hidden, checked_h0,
                                      checked_d_hidden, checked_d_h_last, parsed_activation,
                                      check_finite);
}

// ---------------------------------------------------------------------------------------------
// The softmax head alone, over hidden states (T, B, H).

struct HeadCall {
  Layer shape_only;  // carries dtype and H
  Head head;
  py::array hidden;
};

HeadCall check_head_call(py::handle V_object, py::handle c_object, py::handle hidden_object) {
  py::array V = as_array(V_object, "params['V']");
  const DType dtype = parameter_dtype(V, "params['V']");
  if (V.ndim() != 2 || V.shape(0) < 1 || V.shape(1) < 1) {
    throw py::value_error("params['V']: expected a 2-d array of shape (O, H) with O, H >= 1, got " +
                          shape_string(V));
  }
  Layer shape_only{py::array(), py::array(), py::array(), dtype, V.shape(1), 0};
  const Head head = check_head(V, c_object, shape_only);
  py::array hidden = float_array(hidden_object, "hidden", dtype, "like params['V']");
  check_shape(hidden, "hidden", {{"T", -1}, {"B", -1}, {"H", V.shape(1)}});
  return {shape_only, head, hidden};
}

template <class S>
py::array head_logits_typed(const HeadCall& call, bool check_finite) {
  const py::ssize_t T = call.hidden.shape(0), B = call.hidden.shape(1),
                    H = call.shape_only.hidden_size, O = call.head.output_size;
  check_allocation(bytes_of({double(T) * B * O}, sizeof(S)), "head_logits");
  auto logits = new_array<S>({T, B, O});
  std::vector<FiniteCheck> checks{{"params['V']", call.head.V.data(), call.head.V.size()},
                                  {"params['c']", call.head.c.data(), call.head.c.size()},
                                  {"hidden", call.hidden.data(), call.hidden.size()}};
  const HeadWeights<S> weights = head_weights<S>(call.head, call.shape_only);
  const S* hidden_data = data<S>(call.hidden);
  S* logits_data = mutable_data<S>(logits);
  compute_without_gil<S>(checks, check_finite, [&] {
    head_logits(weights, matrix_view(hidden_data, T * B, H, H),
                matrix_view(logits_data, T * B, O, O));
  });
  return std::move(logits);
}

py::array head_logits_entry(py::handle V, py::handle c, py::handle hidden, bool check_finite) {
  const HeadCall call = check_head_call(V, c, hidden);
  if (call.shape_only.dtype == DType::float32) return head_logits_typed<float>(call, check_finite);
  return head_logits_typed<double>(call, check_finite);
}

template <class S>
py::tuple head_loss_and_grad_typed(const HeadCall& call, const TargetArray& targets,
                                   Reduction reduction, bool check_finite) {
  const py::ssize_t T = call.hidden.shape(0), B = call.hidden.shape(1),
                    H = call.shape_only.hidden_size, O = call.head.output_size, N = T * B;
  check_allocation(bytes_of({double(N) * O, double(N) * H}, sizeof(S)), "head_loss_and_grad");
  auto dV = new_array<S>({O, H}), dc = new_array<S>({O}), d_hidden = new_array<S>({T, B, H});
  std::vector<FiniteCheck> checks{{"params['V']", call.head.V.data(), call.head.V.size()},
                                  {"params['c']", call.head.c.data(), call.head.c.size()},
                                  {"hidden", call.hidden.data(), call.hidden.size()}};
  if (!targets.ids) add_check(checks, "targets", targets.array);
  Targets<S> target_view;
  if (targets.ids) target_view.ids = data<TokenId>(targets.array);
  else target_view.soft = data<S>(targets.array);
  const HeadWeights<S> weights = head_weights<S>(call.head, call.shape_only);
  const HeadGradients<S> grads{mutable_data<S>(dV), mutable_data<S>(dc)};
  S* d_hidden_data = mutable_data<S>(d_hidden);
  const ConstMatrixView<S> hidden = matrix_view(data<S>(call.hidden), N, H, H);
  double loss = 0.0;
  compute_without_gil<S>(checks, check_finite, [&] {
    RowMatrix<S> d_logits(N, O);
    MatrixView<S> d_logits_view = matrix_view(d_logits.data(), N, O, O);
    head_logits(weights, hidden, d_logits_view);
    loss = softmax_cross_entropy(d_logits_view, target_view, reduction);
    const ConstMatrixView<S> d_logits_const = matrix_view(static_cast<const S*>(d_logits.data()), N, O, O);
    head_parameter_gradients(hidden, d_logits_const, grads);
    head_hidden_gradient(weights, d_logits_const, matrix_view(d_hidden_data, N, H, H));
  });
  return py::make_tuple(loss, py::dict("V"_a = dV, "c"_a = dc), d_hidden);
}

py::tuple head_loss_and_grad(py::handle V, py::handle c, py::handle hidden, py::handle targets,
                             py::handle reduction, bool check_finite) {
  const Reduction parsed_reduction = parse_reduction_argument(reduction);
  const HeadCall call = check_head_call(V, c, hidden);
  const TargetArray checked_targets = check_targets(targets, call.shape_only, call.head,
                                                    call.hidden.shape(0), call.hidden.shape(1));
  if (call.shape_only.dtype == DType::float32)
    return head_loss_and_grad_typed<float>(call, checked_targets, parsed_reduction, check_finite);
  return head_loss_and_grad_typed<double>(call, checked_targets, parsed_reduction, check_finite);
}

void set_threads(long long threads) {
  if (threads < 1 || threads > kMaxThreads) {
    throw py::value_error("n: expected a thread count in [1, " + std::to_string(kMaxThreads) +
                          "], got " + std::to_string(threads));
  }
  set_num_threads(int(threads));
}

std::size_t release_scratch() { return Workspace::release_kept() + release_kept_outputs(); }

py::dict build_info() {
  return py::dict("instruction_set"_a = BPTT_ISA_NAME,
                  "simd"_a = std::string(Eigen::SimdInstructionSetsInUse()),
                  "eigen_version"_a = std::to_string(EIGEN_WORLD_VERSION) + "." +
                                      std::to_string(EIGEN_MAJOR_VERSION) + "." +
                                      std::to_string(EIGEN_MINOR_VERSION),
                  "compiler"_a = BPTT_COMPILER,
#ifdef _OPENMP
                  "openmp"_a = true,
#else
                  "openmp"_a = false,
#endif
                  "num_threads"_a = get_num_threads());
}

}  // namespace
}  // namespace bptt::bindings

PYBIND11_MODULE(BPTT_MODULE_NAME, m) {
  namespace py = pybind11;
  using namespace pybind11::literals;
  using namespace bptt::bindings;
  m.doc() = "bptt kernels built for one instruction set; use the bptt package instead";
  const auto none = py::none();
  m.def("loss_and_grad", &loss_and_grad, "U"_a, "W"_a, "b"_a, "V"_a, "c"_a, "inputs"_a,
        "targets"_a, "h0"_a = none, "activation"_a = "tanh", "reduction"_a = "sum",
        "check_finite"_a = true, "input_grad"_a = true, "out"_a = none,
        "L and its gradients for the RNN with softmax head; returns (loss, grads, h_last). "
        "grads has x (dL/dinputs) for float inputs unless input_grad is False. out: a dict of "
        "arrays, by gradient name, that receive those gradients in place of new arrays.");
  m.def("layer_forward", &layer_forward, "U"_a, "W"_a, "b"_a, "inputs"_a, "h0"_a = none,
        "activation"_a = "tanh", "lengths"_a = none, "reverse"_a = false,
        "check_finite"_a = true,
        "States (T + 1, B, H) of the recurrent layer: h0 in slot 0 and h_t in slot t + 1 "
        "(reverse: h_t in slot t and h0 in slot T). With lengths (B,), a padded position keeps "
        "the previous state.");
  m.def("layer_backward", &layer_backward, "U"_a, "W"_a, "b"_a, "inputs"_a, "hidden"_a,
        "h0"_a = none, "d_hidden"_a = none, "d_h_last"_a = none, "activation"_a = "tanh",
        "lengths"_a = none, "reverse"_a = false, "check_finite"_a = true, "input_grad"_a = true,
        "Gradients of U, W, b, h0 (and x for float inputs) given the hidden states by time "
        "(T, B, H), dL/dh_t (T, B, H; ignored at padded positions) and dL/dh_T (B, H).");
  m.def("head_logits", &head_logits_entry, "V"_a, "c"_a, "hidden"_a, "check_finite"_a = true,
        "Logits c + V h_t for hidden states (T, B, H).");
  m.def("head_loss_and_grad", &head_loss_and_grad, "V"_a, "c"_a, "hidden"_a, "targets"_a,
        "reduction"_a = "sum", "check_finite"_a = true,
        "Softmax cross-entropy of the head: returns (loss, {V, c}, dL/dhidden).");
  m.def("set_num_threads", &set_threads, "n"_a);
  m.def("get_num_threads", &bptt::get_num_threads);
  m.def("build_info", &build_info);
  m.def("available_memory_bytes", &bptt::available_memory_bytes,
        "Free or reclaimable RAM and free swap, the bound of the core's allocation check.");
  m.def("release_scratch", &release_scratch,
        "Frees the scratch memory the calling thread keeps between calls, and the kept memory of "
        "result arrays already freed; returns its bytes.");
  bind_optimizer_steps(m);
  bind_training_step(m);
  bind_output_blocks(m);
}
