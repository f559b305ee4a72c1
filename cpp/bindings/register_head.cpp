// bptt._core.head_logits and head_loss_and_grad: the softmax head on its own, over hidden
// states (T, B, H).
#include "model_arguments.hpp"
#include "output_arrays.hpp"
#include "registration.hpp"

#include "bptt/available_memory.hpp"
#include "bptt/softmax_head.hpp"

namespace bptt::bindings {
namespace {

using namespace pybind11::literals;

py::array check_hidden(py::handle hidden, const Head& head) {
  py::array array = float_array(hidden, "hidden", head.dtype, "like params['V']");
  check_shape(array, "hidden", {{"T", -1}, {"B", -1}, {"H", head.hidden_size}});
  return array;
}

std::vector<FiniteCheck> head_checks(const Head& head, const py::array& hidden) {
  std::vector<FiniteCheck> checks = parameter_checks(nullptr, &head);
  checks.push_back({"hidden", hidden.data(), hidden.size()});
  return checks;
}

template <class S>
py::array head_logits_typed(const Head& head, const py::array& hidden, bool check_finite) {
  const py::ssize_t T = hidden.shape(0), B = hidden.shape(1), O = head.output_size;
  check_allocation(bytes_of({double(T) * B * O}, sizeof(S)), "head_logits");
  auto logits = new_array<S>({T, B, O});
  const HeadWeights<S> weights = head_weights<S>(head);
  const S* hidden_data = data<S>(hidden);
  S* logits_data = mutable_data<S>(logits);
  compute_without_gil<S>(head_checks(head, hidden), check_finite,
                         [&] { head_logits(weights, hidden_data, T * B, logits_data); });
  return std::move(logits);
}

py::array head_logits_entry(py::handle V, py::handle c, py::handle hidden, bool check_finite,
                            py::handle compute_dtype) {
  Head head = check_head(V, c);
  head.operands = compute_dtype_argument(compute_dtype, head.dtype);
  const py::array checked_hidden = check_hidden(hidden, head);
  return with_scalar_type(head.dtype, [&](auto scalar) {
    return head_logits_typed<decltype(scalar)>(head, checked_hidden, check_finite);
  });
}

template <class S>
py::tuple head_loss_and_grad_typed(const Head& head, const py::array& hidden,
                                   const TargetArray& targets, Reduction reduction,
                                   bool check_finite) {
  const py::ssize_t T = hidden.shape(0), B = hidden.shape(1), H = head.hidden_size,
                    O = head.output_size, N = T * B;
  check_allocation(double(head_loss_and_grad_scratch_bytes(N, O, sizeof(S))) +
                       bytes_of({double(N) * H}, sizeof(S)),
                   "head_loss_and_grad");
  auto dV = new_array<S>({O, H}), dc = new_array<S>({O}), d_hidden = new_array<S>({T, B, H});
  std::vector<FiniteCheck> checks = head_checks(head, hidden);
  if (!targets.ids) add_check(checks, "targets", targets.array);
  const Targets<S> target_view = targets_view<S>(targets);
  const HeadWeights<S> weights = head_weights<S>(head);
  const HeadGradients<S> grads{mutable_data<S>(dV), mutable_data<S>(dc)};
  const S* hidden_data = data<S>(hidden);
  S* d_hidden_data = mutable_data<S>(d_hidden);
  double loss = 0.0;
  compute_without_gil<S>(checks, check_finite, [&] {
    loss = head_loss_and_grad(weights, hidden_data, N, target_view, reduction, grads,
                              d_hidden_data);
  });
  return py::make_tuple(loss, py::dict("V"_a = dV, "c"_a = dc), d_hidden);
}

py::tuple head_loss_and_grad_entry(py::handle V, py::handle c, py::handle hidden,
                                   py::handle targets, py::handle reduction, bool check_finite,
                                   py::handle compute_dtype) {
  const Reduction parsed_reduction = reduction_argument(reduction);
  Head head = check_head(V, c);
  head.operands = compute_dtype_argument(compute_dtype, head.dtype);
  const py::array checked_hidden = check_hidden(hidden, head);
  const TargetArray checked_targets =
      check_targets(targets, head, checked_hidden.shape(0), checked_hidden.shape(1));
  return with_scalar_type(head.dtype, [&](auto scalar) {
    return head_loss_and_grad_typed<decltype(scalar)>(head, checked_hidden, checked_targets,
                                                      parsed_reduction, check_finite);
  });
}

}  // namespace

void register_head(py::module_& m) {
  const auto none = py::none();
  m.def("head_logits", &head_logits_entry, "V"_a, "c"_a, "hidden"_a,
        py::arg("check_finite").noconvert() = true, "compute_dtype"_a = none,
        "Logits c + V h_t for hidden states (T, B, H).");
  m.def("head_loss_and_grad", &head_loss_and_grad_entry, "V"_a, "c"_a, "hidden"_a, "targets"_a,
        "reduction"_a = "sum", py::arg("check_finite").noconvert() = true,
        "compute_dtype"_a = none,
        "Softmax cross-entropy of the head: returns (loss, {V, c}, dL/dhidden).");
}

}  // namespace bptt::bindings
