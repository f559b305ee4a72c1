// The optimizer steps of the core (bptt/optimizer_steps.hpp) for bptt.optimizers: updates in
// place on NumPy vectors, each argument checked and never copied.
#include "registration.hpp"
#include "step_vectors.hpp"
#include "without_gil.hpp"

#include "bptt/optimizer_steps.hpp"

namespace bptt::bindings {

using namespace pybind11::literals;

namespace {

template <class S>
void adagrad_typed(const StepVectors& v, double lr, double eps) {
  adagrad_step<S>(v.updated<S>(v.param), v.read<S>(v.grad), v.updated<S>(v.state[0]), v.size,
                  S(lr), S(eps));
}

void adagrad(py::handle param, py::handle grad, py::handle sum, double lr, double eps) {
  const StepVectors v(param, grad, {{"sum", sum}});
  without_gil([&] {
    with_scalar_type(v.dtype, [&](auto scalar) { adagrad_typed<decltype(scalar)>(v, lr, eps); });
  });
}

template <class S>
void adam_typed(const StepVectors& v, const AdamStep<S>& step) {
  adam_step<S>(v.updated<S>(v.param), v.read<S>(v.grad), v.updated<S>(v.state[0]),
               v.updated<S>(v.state[1]), v.size, step);
}

void adam(py::handle param, py::handle grad, py::handle exp_avg, py::handle exp_avg_sq,
          double lr, double beta1, double beta2, double eps, std::int64_t step) {
  if (step < 1) throw py::value_error("step: expected >= 1, got " + std::to_string(step));
  const StepVectors v(param, grad, {{"exp_avg", exp_avg}, {"exp_avg_sq", exp_avg_sq}});
  without_gil([&] {
    with_scalar_type(v.dtype, [&](auto scalar) {
      using S = decltype(scalar);
      adam_typed<S>(v, adam_step_scalars<S>(lr, beta1, beta2, eps, step));
    });
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
    with_scalar_type(v.dtype, [&](auto scalar) {
      sgd_momentum_typed<decltype(scalar)>(v, lr, momentum, first_step);
    });
  });
}

}  // namespace

void register_optimizers(py::module_& m) {
  m.def("adagrad_step", &adagrad, "param"_a, "grad"_a, "sum"_a, "lr"_a, "eps"_a,
        "torch.optim.Adagrad's step, in place on the vectors param and sum.");
  m.def("adam_step", &adam, "param"_a, "grad"_a, "exp_avg"_a, "exp_avg_sq"_a, "lr"_a,
        "beta1"_a, "beta2"_a, "eps"_a, "step"_a,
        "torch.optim.Adam's update number `step` (from 1), in place on param, exp_avg and "
        "exp_avg_sq, with its bias corrections.");
  m.def("sgd_momentum_step", &sgd_momentum, "param"_a, "grad"_a, "buffer"_a, "lr"_a,
        "momentum"_a, py::arg("first_step").noconvert(),
        "torch.optim.SGD's step with momentum, in place on param and buffer.");
}

}  // namespace bptt::bindings
