// bptt._core.loss_and_grad: the whole model, L and every gradient, in one call of the core.
#include "gradient_outputs.hpp"
#include "model_arguments.hpp"
#include "output_arrays.hpp"
#include "registration.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/memory_budget.hpp"
#include "bptt/rnn_loss.hpp"

#include <optional>
#include <string>
#include <tuple>

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

// The working memory the core may take: the budget less the copies of arguments made or to be
// made (an array of another dtype or layout, an unaligned out array), or, with no budget,
// everything that fits in the memory available (0: every state kept), checked up front.
std::size_t core_budget(const ProblemSize& size, std::size_t scalar_bytes, bool tokens,
                        ProductOperands operands, std::optional<std::size_t> budget,
                        double copies, double outputs) {
  if (budget) {
    const auto copy_bytes = std::size_t(copies);
    // A budget the copies alone fill is refused naming the same least budget as one a little
    // larger, found as the smallest schedule's need under a budget of one byte.
    const bool room_beyond_copies = *budget > copy_bytes;
    const std::size_t rest = room_beyond_copies ? *budget - copy_bytes : 1;
    try {
      rnn_loss_working_bytes(size, scalar_bytes, tokens, rest, operands);
    } catch (const MemoryBudgetTooSmall& error) {
      throw py::value_error("memory_budget: expected at least " +
                            std::to_string(error.minimum + copy_bytes) +
                            " bytes (the smallest schedule's need for this problem" +
                            (copies > 0 ? ", and the arguments' copies" : "") + "), got " +
                            std::to_string(*budget));
    }
    if (!room_beyond_copies) {  // a problem whose schedules need at most a byte
      throw py::value_error("memory_budget: expected more than the " +
                            std::to_string(copy_bytes) + " bytes of the arguments' copies, got " +
                            std::to_string(*budget));
    }
    return rest;
  }
  const double everything =
      double(rnn_loss_working_bytes(size, scalar_bytes, tokens, 0, operands));
  if (fits_in_available_memory(everything + outputs + copies)) return 0;
  const double available = double(available_memory_bytes()) - outputs - copies;
  if (available <= 0) {
    check_allocation(everything + outputs, "loss_and_grad");
    return 0;
  }
  try {  // the states computed again where keeping them all does not fit
    rnn_loss_working_bytes(size, scalar_bytes, tokens, std::size_t(available), operands);
    return std::size_t(available);
  } catch (const MemoryBudgetTooSmall&) {
    check_allocation(everything + outputs, "loss_and_grad");  // raises MemoryError
    return 0;
  }
}

// The bytes of the arrays a call returns: the gradients, h_last and, with input_gradient,
// dL/dx (T, B, D).
double returned_bytes(const ProblemSize& size, std::size_t scalar_bytes, bool input_gradient) {
  const double T = double(size.steps), B = double(size.batch), D = double(size.input_size),
               H = double(size.hidden_size), O = double(size.output_size);
  return bytes_of({H * D + H * H + H + O * H + O + 2.0 * B * H, input_gradient ? T * B * D : 0.0},
                  scalar_bytes);
}

template <class S>
py::tuple loss_and_grad_typed(const Layer& layer, const Head& head, const Inputs& inputs,
                              const TargetArray& targets, const py::object& h0,
                              Activation activation, Reduction reduction, bool check_finite,
                              GradientOutputs& outputs, std::optional<std::size_t> budget,
                              double copies) {
  const py::ssize_t T = inputs.steps, B = inputs.batch, H = layer.hidden_size,
                    D = layer.input_size, O = head.output_size;
  const ProblemSize size{T, B, D, H, O};
  const double output_bytes = returned_bytes(size, sizeof(S), inputs.wants_input_gradient());
  const std::size_t memory_budget = core_budget(size, sizeof(S), inputs.tokens, layer.operands,
                                                budget, copies + outputs.staged_bytes(),
                                                output_bytes);
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

  std::vector<FiniteCheck> checks = parameter_checks(&layer, &head);
  if (!inputs.tokens) add_check(checks, "inputs", inputs.array);
  if (!targets.ids) add_check(checks, "targets", targets.array);
  add_check(checks, "h0", h0);

  const LayerWeights<S> layer_view = layer_weights<S>(layer);
  const HeadWeights<S> head_view = head_weights<S>(head);
  const SequenceInput<S> input_view = sequence_input<S>(inputs);
  const Targets<S> target_view = targets_view<S>(targets);
  LayerGradients<S> layer_grads{mutable_data<S>(dU), mutable_data<S>(dW), mutable_data<S>(db),
                                mutable_data<S>(dh0)};
  if (inputs.wants_input_gradient()) layer_grads.inputs = mutable_data<S>(dx);
  const HeadGradients<S> head_grads{mutable_data<S>(dV), mutable_data<S>(dc)};

  double loss = 0.0;
  const S* h0_data = optional_data<S>(h0);
  S* h_last_data = mutable_data<S>(h_last);
  compute_without_gil<S>(checks, check_finite, [&] {
    loss = rnn_loss_and_grad(layer_view, head_view, input_view, target_view, h0_data, activation,
                             reduction, layer_grads, head_grads, h_last_data, nullptr,
                             memory_budget);
  });
  py::dict grads("U"_a = dU, "W"_a = dW, "b"_a = db, "V"_a = dV, "c"_a = dc, "h0"_a = dh0);
  if (inputs.wants_input_gradient()) grads["x"] = dx;
  outputs.deliver(grads);
  return py::make_tuple(loss, grads, h_last);
}

py::tuple loss_and_grad(py::handle U, py::handle W, py::handle b, py::handle V, py::handle c,
                        py::handle inputs, py::handle targets, py::handle h0,
                        py::handle activation, py::handle reduction, bool check_finite,
                        bool input_grad, py::handle out, py::handle memory_budget,
                        py::handle compute_dtype) {
  const std::optional<std::size_t> budget = budget_argument(memory_budget);
  const Activation parsed_activation = activation_argument(activation);
  const Reduction parsed_reduction = reduction_argument(reduction);
  Layer layer = check_layer(U, W, b);
  Head head = check_head(V, c, layer);
  layer.operands = head.operands = compute_dtype_argument(compute_dtype, layer.dtype);
  Inputs checked_inputs = check_inputs(inputs, layer);
  checked_inputs.input_grad = input_grad;
  const TargetArray checked_targets =
      check_targets(targets, head, checked_inputs.steps, checked_inputs.batch);
  const py::object checked_h0 = check_state(h0, "h0", layer, checked_inputs.batch);
  GradientOutputs outputs(
      out,
      checked_inputs.wants_input_gradient()
          ? std::initializer_list<const char*>{"U", "W", "b", "V", "c", "h0", "x"}
          : std::initializer_list<const char*>{"U", "W", "b", "V", "c", "h0"},
      layer.dtype,
      // The arguments as given, and the arrays the core reads: an argument that is neither an
      // array nor a buffer (a tensor, an object with __array_interface__) is seen by its array.
      {{"params['U']", U}, {"params['W']", W}, {"params['b']", b}, {"params['V']", V},
       {"params['c']", c}, {"inputs", inputs}, {"targets", targets}, {"h0", h0},
       {"params['U']", layer.U}, {"params['W']", layer.W}, {"params['b']", layer.b},
       {"params['V']", head.V}, {"params['c']", head.c}, {"inputs", checked_inputs.array},
       {"targets", checked_targets.array}, {"h0", checked_h0}});
  const double copies = copied_bytes({{U, layer.U}, {W, layer.W}, {b, layer.b}, {V, head.V},
                                      {c, head.c}, {inputs, checked_inputs.array},
                                      {targets, checked_targets.array}, {h0, checked_h0}});
  return with_scalar_type(layer.dtype, [&](auto scalar) {
    return loss_and_grad_typed<decltype(scalar)>(layer, head, checked_inputs, checked_targets,
                                                 checked_h0, parsed_activation, parsed_reduction,
                                                 check_finite, outputs, budget, copies);
  });
}

py::dict memory_plan(py::ssize_t steps, py::ssize_t batch, py::ssize_t input_size,
                     py::ssize_t hidden_size, py::ssize_t output_size, py::handle dtype,
                     bool tokens, py::handle memory_budget, py::handle compute_dtype) {
  // No steps or no sequences is a call loss_and_grad takes (it computes nothing); no features,
  // hidden units or outputs is not.
  for (const auto& [name, value, least] :
       {std::tuple<const char*, py::ssize_t, py::ssize_t>{"T", steps, 0}, {"B", batch, 0},
        {"D", input_size, 1}, {"H", hidden_size, 1}, {"O", output_size, 1}}) {
    if (value < least) {
      throw py::value_error(std::string(name) + ": expected an integer >= " +
                            std::to_string(least) + ", got " + std::to_string(value));
    }
  }
  const std::string name = string_argument(dtype, "dtype");
  if (name != "float32" && name != "float64")
    throw py::value_error("dtype: expected 'float32' or 'float64', got '" + name + "'");
  const std::size_t scalar_bytes = name == "float32" ? 4 : 8;
  const ProductOperands operands =
      compute_dtype_argument(compute_dtype, name == "float32" ? DType::float32 : DType::float64);
  const std::optional<std::size_t> budget = budget_argument(memory_budget);
  const ProblemSize size{steps, batch, input_size, hidden_size, output_size};
  LossMemoryPlan plan;
  try {
    // No budget: what a call would take, every state kept if that fits in the memory available
    // now, else as much as is available (MemoryError if even the least does not fit).
    const std::size_t planned =
        budget ? *budget
               : core_budget(size, scalar_bytes, tokens, operands, std::nullopt, 0,
                             returned_bytes(size, scalar_bytes, !tokens));
    plan = rnn_loss_memory_plan(size, scalar_bytes, tokens, planned, operands);
  } catch (const MemoryBudgetTooSmall& error) {
    throw py::value_error(error.what());
  }
  return py::dict("bytes"_a = plan.bytes, "schedule"_a = plan.schedule,
                  "stored_states"_a = plan.stored_states, "checkpoints"_a = plan.checkpoints,
                  "recomputed_steps"_a = plan.recomputed_steps,
                  "minimum_bytes"_a = plan.minimum_bytes);
}

}  // namespace

void register_model(py::module_& m) {
  const auto none = py::none();
  m.def("loss_and_grad", &loss_and_grad, "U"_a, "W"_a, "b"_a, "V"_a, "c"_a, "inputs"_a,
        "targets"_a, "h0"_a = none, "activation"_a = "tanh", "reduction"_a = "sum",
        py::arg("check_finite").noconvert() = true, py::arg("input_grad").noconvert() = true,
        "out"_a = none,
        "memory_budget"_a = none, "compute_dtype"_a = none,
        "L and its gradients for the RNN with softmax head; returns (loss, grads, h_last). "
        "grads has x (dL/dinputs) for float inputs unless input_grad is False. out: a dict of "
        "arrays, by gradient name, that receive those gradients in place of new arrays. "
        "memory_budget: bytes of working memory at most (the same results for any budget). "
        "compute_dtype: 'bfloat16' for bfloat16 product operands (float32 params).");
  m.def("memory_plan", &memory_plan, "steps"_a, "batch"_a, "input_size"_a, "hidden_size"_a,
        "output_size"_a, "dtype"_a = "float32", "tokens"_a = false, "memory_budget"_a = none,
        "compute_dtype"_a = none,
        "What loss_and_grad would do with its working memory for this problem: bytes, schedule, "
        "states stored, checkpoints, steps computed again (a fraction of a forward pass) and the "
        "least budget.");
}

}  // namespace bptt::bindings
