// bptt._core.TrainingStep: bptt train's whole step (loss, gradients, clipping and the
// optimizer's update) in one call of the core, on the flat vectors bptt train keeps.
#include "model_arguments.hpp"
#include "registration.hpp"
#include "step_vectors.hpp"
#include "without_gil.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/memory_budget.hpp"
#include "bptt/rnn_loss.hpp"
#include "bptt/training_step.hpp"

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

py::ssize_t positive_size(py::ssize_t value, const char* name) {
  if (value < 1) {
    throw py::value_error(std::string(name) + ": expected >= 1, got " + std::to_string(value));
  }
  return value;
}

double finite_number(double value, const char* name) {
  if (!std::isfinite(value)) {
    throw py::value_error(std::string(name) + ": expected a finite number, got " +
                          std::to_string(value));
  }
  return value;
}

class TrainingStep {
 public:
  TrainingStep(py::handle param, py::handle grad, py::tuple states, py::ssize_t input_size,
               py::ssize_t hidden_size, py::ssize_t output_size, py::handle activation,
               double max_norm, py::handle optimizer, double lr, double eps, double beta1,
               double beta2, double momentum, py::handle memory_budget, py::handle compute_dtype,
               py::ssize_t layers)
      : layout_{positive_size(input_size, "input_size"), positive_size(hidden_size, "hidden_size"),
                positive_size(output_size, "output_size"), positive_size(layers, "layers")},
        max_norm_(finite_number(max_norm, "max_norm")),
        memory_budget_(budget_argument(memory_budget).value_or(0)),
        lr_(finite_number(lr, "lr")),
        eps_(finite_number(eps, "eps")),
        beta1_(finite_number(beta1, "beta1")),
        beta2_(finite_number(beta2, "beta2")),
        momentum_(finite_number(momentum, "momentum")) {
    activation_ = activation_argument(activation);
    const std::string name = string_argument(optimizer, "optimizer");
    const size_t expected_states = name == "adam" ? 2 : name == "adagrad" || name == "sgd" ? 1 : 0;
    if (expected_states == 0) {
      throw py::value_error("optimizer: expected 'adam', 'adagrad' or 'sgd', got '" + name + "'");
    }
    if (states.size() != expected_states) {
      throw py::value_error("states: expected " + std::to_string(expected_states) +
                            " vector(s) for " + name + ", got " + std::to_string(states.size()));
    }
    kind_ = name == "adam" ? OptimizerKind::adam
            : name == "adagrad" ? OptimizerKind::adagrad
                                : OptimizerKind::sgd_momentum;
    using Named = std::initializer_list<std::pair<const char*, py::handle>>;
    if (expected_states == 2)
      vectors_.emplace(param, grad, Named{{"exp_avg", states[0]}, {"exp_avg_sq", states[1]}}, true);
    else
      vectors_.emplace(param, grad, Named{{"state", states[0]}}, true);
    if (vectors_->size != layout_.size()) {
      throw py::value_error(
          std::string("param: expected H·D + H·H + H") +
          (layers > 1 ? " + (layers - 1)·(2·H·H + H)" : "") + " + O·H + O = " +
          std::to_string(layout_.size()) + " values for D = " + std::to_string(input_size) +
          ", H = " + std::to_string(hidden_size) + ", O = " + std::to_string(output_size) +
          (layers > 1 ? ", layers = " + std::to_string(layers) : "") + ", got " +
          std::to_string(vectors_->size));
    }
    operands_ = compute_dtype_argument(compute_dtype, vectors_->dtype);
    if (layers > 1 && memory_budget_ != 0) {
      throw py::value_error("memory_budget: a budget bounds a one-layer step only (layers 1), "
                            "got layers " + std::to_string(layers));
    }
  }

  // One step on a chunk: token ids (T, B) and their targets, the state h0 (B, H) the chunk
  // starts from and h_last (B, H), written with the state after it; `step` counts the
  // optimizer's updates, this one included. Returns (loss, norm, updated).
  py::tuple operator()(py::handle inputs, py::handle targets, py::handle h0, py::handle h_last,
                       std::int64_t step) {
    if (step < 1) throw py::value_error("step: expected >= 1, got " + std::to_string(step));
    const StepVectors& v = *vectors_;
    py::array input_ids = id_array(as_array(inputs, "inputs"), "inputs", "integer token ids");
    check_shape(input_ids, "inputs", {{"T", -1}, {"B", -1}});
    const py::ssize_t T = input_ids.shape(0), B = input_ids.shape(1);
    const py::ssize_t H = layout_.hidden_size;
    check_id_range(input_ids, "inputs", 0, layout_.input_size, "D");
    py::array target_ids = id_array(as_array(targets, "targets"), "targets", "integer class ids");
    check_shape(target_ids, "targets", {{"T", T}, {"B", B}});
    check_id_range(target_ids, "targets", -1, layout_.output_size, "O");
    py::array initial = float_array(h0, "h0", v.dtype, "like the params");
    check_state_shape(initial, "h0", B, H);
    py::array last = h_last_argument(h_last, B, H);
    for (const auto& [name, array] :
         std::initializer_list<std::pair<const char*, const py::array*>>{
             {"param", &v.param}, {"grad", &v.grad}, {"h0", &initial}}) {
      if (share_memory(last, *array))
        throw py::value_error(std::string("h_last: expected an array of its own, got one sharing "
                                          "memory with ") + name);
    }
    for (const py::array& state : v.state)
      if (share_memory(last, state))
        throw py::value_error("h_last: expected an array of its own, got one sharing memory with "
                              "an optimizer state");
    return with_scalar_type(v.dtype, [&](auto scalar) {
      return run<decltype(scalar)>(input_ids, target_ids, initial, last, step);
    });
  }

 private:
  // A state: (B, H) for one layer, (layers, B, H) for a stack.
  void check_state_shape(const py::array& array, const char* name, py::ssize_t B,
                         py::ssize_t H) const {
    if (layout_.layers == 1) check_shape(array, name, {{"B", B}, {"H", H}});
    else check_shape(array, name, {{"layers", layout_.layers}, {"B", B}, {"H", H}});
  }

  // h_last, written in place: a writable, C-contiguous state array of the params' dtype.
  py::array h_last_argument(py::handle object, py::ssize_t B, py::ssize_t H) const {
    if (!py::isinstance<py::array>(object)) throw py::type_error("h_last: expected a NumPy array");
    auto array = py::reinterpret_borrow<py::array>(object);
    if (!is_float_array(array) || parameter_dtype(array, "h_last") != vectors_->dtype) {
      throw py::type_error(std::string("h_last: expected dtype ") + dtype_name(vectors_->dtype) +
                           " like the params, got " + std::string(py::str(array.dtype())));
    }
    check_state_shape(array, "h_last", B, H);
    if (!is_c_contiguous_and_aligned(array) || !array.writeable()) {
      throw py::value_error("h_last: expected a writable, C-contiguous array, written in place");
    }
    return array;
  }

  template <class S>
  py::tuple run(const py::array& inputs, const py::array& targets, const py::array& h0,
                py::array& h_last, std::int64_t step) {
    const StepVectors& v = *vectors_;
    SequenceInput<S> input_view{inputs.shape(0), inputs.shape(1)};
    input_view.tokens = data<TokenId>(inputs);
    Targets<S> target_view;
    target_view.ids = data<TokenId>(targets);
    try {
      check_allocation(double(training_step_working_bytes(layout_, input_view.steps,
                                                          input_view.batch, sizeof(S),
                                                          memory_budget_, operands_)),
                       "the training step");
    } catch (const MemoryBudgetTooSmall& error) {
      throw py::value_error(error.what());
    }

    OptimizerUpdate<S> update{kind_};
    update.state[0] = v.updated<S>(v.state[0]);
    if (v.state.size() > 1) update.state[1] = v.updated<S>(v.state[1]);
    update.lr = S(lr_);
    update.eps = S(eps_);
    update.momentum = S(momentum_);
    update.first_step = step == 1;
    update.adam = adam_step_scalars<S>(lr_, beta1_, beta2_, eps_, step);

    S* const params = v.updated<S>(v.param);
    S* const grads = v.updated<S>(v.grad);
    const S* initial = data<S>(h0);
    S* last = static_cast<S*>(h_last.mutable_data());
    StepOutcome outcome{};
    without_gil([&] {
      outcome = training_step(layout_, params, grads, input_view, target_view, initial, last,
                              activation_, max_norm_, update, memory_budget_, operands_);
    });
    return py::make_tuple(outcome.loss, outcome.grad_norm, outcome.updated);
  }

  ParameterLayout layout_;
  double max_norm_;
  std::size_t memory_budget_;  // 0: none
  double lr_, eps_, beta1_, beta2_, momentum_;
  Activation activation_ = Activation::tanh;
  OptimizerKind kind_ = OptimizerKind::adam;
  ProductOperands operands_ = ProductOperands::native;
  std::optional<StepVectors> vectors_;
};

}  // namespace

void register_training_step(py::module_& m) {
  py::class_<TrainingStep>(m, "TrainingStep",
                           "bptt train's step in one call: loss and gradients of a chunk of "
                           "token streams (mean reduction), clipping by the global norm, and the "
                           "optimizer's update, on vectors laid out as U, W, b (each layer's, "
                           "layer by layer), V, c.")
      .def(py::init<py::handle, py::handle, py::tuple, py::ssize_t, py::ssize_t, py::ssize_t,
                    py::handle, double, py::handle, double, double, double, double, double,
                    py::handle, py::handle, py::ssize_t>(),
           "param"_a, "grad"_a, "states"_a, "input_size"_a, "hidden_size"_a, "output_size"_a,
           "activation"_a, "max_norm"_a, "optimizer"_a, "lr"_a, "eps"_a = 0.0,
           "beta1"_a = 0.0, "beta2"_a = 0.0, "momentum"_a = 0.0, "memory_budget"_a = py::none(),
           "compute_dtype"_a = py::none(), "layers"_a = 1)
      .def("__call__", &TrainingStep::operator(), "inputs"_a, "targets"_a, "h0"_a, "h_last"_a,
           "step"_a,
           "One step on token ids (T, B) and targets (T, B) from the state h0 (B, H), or "
           "(layers, B, H) for a stack; writes the state after it into h_last and returns "
           "(loss, grad_norm, updated).");
}

}  // namespace bptt::bindings
