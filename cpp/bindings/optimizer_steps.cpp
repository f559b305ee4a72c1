#include "optimizer_steps.hpp"

#include "arguments.hpp"
#include "without_gil.hpp"
#include "bptt/optimizer_steps.hpp"

#include <pybind11/numpy.h>

#include <string>
#include <utility>
#include <vector>

namespace bptt::bindings {

using namespace pybind11::literals;

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

namespace {

template <class S>
void adagrad_typed(const StepVectors& v, double lr, double eps) {
  adagrad_step<S>(v.updated<S>(v.param), v.read<S>(v.grad), v.updated<S>(v.state[0]), v.size,
                  S(lr), S(eps));
}

void adagrad(py::handle param, py::handle grad, py::handle sum, double lr, double eps) {
  const StepVectors v(param, grad, {{"sum", sum}});
  without_gil([&] {
    if (v.dtype == DType::float32) adagrad_typed<float>(v, lr, eps);
    else adagrad_typed<double>(v, lr, eps);
  });
}

// Each scalar rounded once from its double value, as NumPy rounds a Python float.
template <class S>
void adam_typed(const StepVectors& v, double beta1, double beta2, double step_size,
                double bias_correction2_sqrt, double eps) {
  const AdamStep<S> step{S(1.0 - beta1), S(beta2), S(1.0 - beta2), S(step_size),
                         S(bias_correction2_sqrt), S(eps)};
  adam_step<S>(v.updated<S>(v.param), v.read<S>(v.grad), v.updated<S>(v.state[0]),
               v.updated<S>(v.state[1]), v.size, step);
}

void adam(py::handle param, py::handle grad, py::handle exp_avg, py::handle exp_avg_sq,
          double beta1, double beta2, double step_size, double bias_correction2_sqrt,
          double eps) {
  const StepVectors v(param, grad, {{"exp_avg", exp_avg}, {"exp_avg_sq", exp_avg_sq}});
  without_gil([&] {
    if (v.dtype == DType::float32)
      adam_typed<float>(v, beta1, beta2, step_size, bias_correction2_sqrt, eps);
    else adam_typed<double>(v, beta1, beta2, step_size, bias_correction2_sqrt, eps);
  });
}

template <class S>
void sgd_momentum_typed(const StepVectors& v, double lr, double momentum, bool first_step) {
  sgd_momentum_step<S>(v.updated<S>(v.param), v.read<S>(v.grad), v.updated<S>(v.state[0]),
                       v.size, S(lr), S(momentum), first_step);
}

void sgd_momentum(py::handle param, py::handle grad, py::handle buffer, double lr,
                  double momentum, bool first_step) {
  const StepVectors v(param, grad, {{"buffer", buffer}});
  without_gil([&] {
    if (v.dtype == DType::float32) sgd_momentum_typed<float>(v, lr, momentum, first_step);
    else sgd_momentum_typed<double>(v, lr, momentum, first_step);
  });
}

}  // namespace

void bind_optimizer_steps(py::module_& m) {
  m.def("adagrad_step", &adagrad, "param"_a, "grad"_a, "sum"_a, "lr"_a, "eps"_a,
        "torch.optim.Adagrad's step, in place on the vectors param and sum.");
  m.def("adam_step", &adam, "param"_a, "grad"_a, "exp_avg"_a, "exp_avg_sq"_a, "beta1"_a,
        "beta2"_a, "step_size"_a, "bias_correction2_sqrt"_a, "eps"_a,
        "torch.optim.Adam's step, in place on param, exp_avg and exp_avg_sq; step_size is "
        "lr / (1 - beta1**t) and bias_correction2_sqrt is sqrt(1 - beta2**t).");
  m.def("sgd_momentum_step", &sgd_momentum, "param"_a, "grad"_a, "buffer"_a, "lr"_a,
        "momentum"_a, py::arg("first_step").noconvert(),
        "torch.optim.SGD's step with momentum, in place on param and buffer.");
}

}  // namespace bptt::bindings
