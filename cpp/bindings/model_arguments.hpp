// The model's arguments, checked once for every function that takes them (the whole model, the
// layer and the head): parameters, inputs, lengths, states, targets and options, and the
// views of them the core reads.
#pragma once

#include "arguments.hpp"
#include "without_gil.hpp"

#include "bptt/types.hpp"

#include <optional>
#include <string>
#include <vector>

namespace bptt::bindings {

struct Layer {
  py::array U, W, b;
  DType dtype;
  py::ssize_t hidden_size, input_size;
  ProductOperands operands = ProductOperands::native;  // set by compute_dtype_argument
};

struct Head {
  py::array V, c;
  DType dtype;
  py::ssize_t hidden_size, output_size;
  ProductOperands operands = ProductOperands::native;
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

Layer check_layer(py::handle U, py::handle W, py::handle b);
// V and c like the layer's parameters (hidden size and dtype).
Head check_head(py::handle V, py::handle c, const Layer& layer);
// V and c on their own: V sets the dtype and the hidden size.
Head check_head(py::handle V, py::handle c);
Inputs check_inputs(py::handle inputs, const Layer& layer);
// Per-sequence lengths (each in [0, T]) and the direction of the recurrence.
void check_sequence_layout(Inputs& inputs, py::handle lengths, bool reverse);
// A state (B, H) such as h0, or None.
py::object check_state(py::handle state, const char* name, const Layer& layer, py::ssize_t batch);
TargetArray check_targets(py::handle targets, const Head& head, py::ssize_t steps,
                          py::ssize_t batch);
Activation activation_argument(py::handle activation);
// compute_dtype: None or the parameters' dtype name (their own products), or 'bfloat16' with
// float32 parameters; a ValueError naming compute_dtype otherwise.
ProductOperands compute_dtype_argument(py::handle compute_dtype, DType params_dtype);
Reduction reduction_argument(py::handle reduction);

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
          layer.hidden_size, layer.operands};
}

template <class S>
HeadWeights<S> head_weights(const Head& head) {
  return {data<S>(head.V), data<S>(head.c), head.hidden_size, head.output_size, head.operands};
}

template <class S>
SequenceInput<S> sequence_input(const Inputs& inputs) {
  static_assert(sizeof(Index) == sizeof(std::int64_t), "lengths are passed as int64");
  SequenceInput<S> view{inputs.steps, inputs.batch};
  if (inputs.tokens) view.tokens = data<TokenId>(inputs.array);
  else view.dense = data<S>(inputs.array);
  if (!inputs.lengths.is_none()) {
    view.lengths = reinterpret_cast<const Index*>(
        data<std::int64_t>(py::reinterpret_borrow<py::array>(inputs.lengths)));
  }
  view.reverse = inputs.reverse;
  return view;
}

template <class S>
Targets<S> targets_view(const TargetArray& targets) {
  Targets<S> view;
  if (targets.ids) view.ids = data<TokenId>(targets.array);
  else view.soft = data<S>(targets.array);
  return view;
}

// The finiteness checks of the parameters, and of other arrays (None is skipped).
std::vector<FiniteCheck> parameter_checks(const Layer* layer, const Head* head);
void add_check(std::vector<FiniteCheck>& checks, const char* name, const py::object& array);

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

// A memory budget in bytes (Python parses units), or none: a TypeError or ValueError naming
// memory_budget otherwise.
std::optional<std::size_t> budget_argument(py::handle memory_budget);

// The bytes of the checked arrays that are copies of their arguments (another dtype, layout or
// a list), not the arguments' own memory.
double copied_bytes(std::initializer_list<std::pair<py::handle, py::handle>> checked);

// The bytes of arrays of these element counts.
double bytes_of(std::initializer_list<double> counts, std::size_t scalar_bytes);

}  // namespace bptt::bindings
