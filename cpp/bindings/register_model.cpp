// bptt._core.loss_and_grad: the whole model, L and every gradient, in one call of the core.
#include "gradient_outputs.hpp"
#include "model_arguments.hpp"
#include "output_arrays.hpp"
#include "registration.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/rnn_loss.hpp"

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

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
                             reduction, layer_grads, head_grads, h_last_data);
  });
  py::dict grads("U"_a = dU, "W"_a = dW, "b"_a = db, "V"_a = dV, "c"_a = dc, "h0"_a = dh0);
  if (inputs.wants_input_gradient()) grads["x"] = dx;
  return py::make_tuple(loss, grads, h_last);
}

py::tuple loss_and_grad(py::handle U, py::handle W, py::handle b, py::handle V, py::handle c,
                        py::handle inputs, py::handle targets, py::handle h0,
                        py::handle activation, py::handle reduction, bool check_finite,
                        bool input_grad, py::handle out) {
  const Activation parsed_activation = activation_argument(activation);
  const Reduction parsed_reduction = reduction_argument(reduction);
  const Layer layer = check_layer(U, W, b);
  const Head head = check_head(V, c, layer);
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
      {{"params['U']", U}, {"params['W']", W}, {"params['b']", b}, {"params['V']", V},
       {"params['c']", c}, {"inputs", inputs}, {"targets", targets}, {"h0", h0}});
  return with_scalar_type(layer.dtype, [&](auto scalar) {
    return loss_and_grad_typed<decltype(scalar)>(layer, head, checked_inputs, checked_targets,
                                                 checked_h0, parsed_activation, parsed_reduction,
                                                 check_finite, outputs);
  });
}

}  // namespace

void register_model(py::module_& m) {
  const auto none = py::none();
  m.def("loss_and_grad", &loss_and_grad, "U"_a, "W"_a, "b"_a, "V"_a, "c"_a, "inputs"_a,
        "targets"_a, "h0"_a = none, "activation"_a = "tanh", "reduction"_a = "sum",
        "check_finite"_a = true, "input_grad"_a = true, "out"_a = none,
        "L and its gradients for the RNN with softmax head; returns (loss, grads, h_last). "
        "grads has x (dL/dinputs) for float inputs unless input_grad is False. out: a dict of "
        "arrays, by gradient name, that receive those gradients in place of new arrays.");
}

}  // namespace bptt::bindings
