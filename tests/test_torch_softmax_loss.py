"""bptt.torch.rnn_softmax_loss, the model's whole loss as one torch autograd operation, against
the same model written in plain torch operations and differentiated by torch's autograd."""

import re

import closeness
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F

import bptt
from bptt.torch import rnn_softmax_loss

T, B, D, H, O = 7, 3, 5, 6, 4
ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid}
# The two ways to differentiate a scalar again: into every leaf, or into some only.
DIFFERENTIATE = {
    "backward": lambda scalar, leaf: scalar.backward(),
    "grad": lambda scalar, leaf: torch.autograd.grad(scalar, leaf),
}


def plain_torch_loss(params, inputs, targets, h0, activation, reduction):
    """a_t = b + W h_{t-1} + U x_t, h_t = act(a_t), o_t = c + V h_t, L = cross-entropy(o_t, y_t)."""
    U, W, b, V, c = (params[name] for name in "UWbVc")
    if not inputs.is_floating_point():
        inputs = F.one_hot(inputs, D).to(U.dtype)
    h = torch.zeros(inputs.shape[1], H, dtype=U.dtype) if h0 is None else h0
    logits = []
    for x in inputs:
        h = ACTIVATIONS[activation](b + h @ W.T + x @ U.T)
        logits.append(h @ V.T + c)
    logits = torch.stack(logits).reshape(-1, O)
    if targets.is_floating_point():
        loss = -(targets.reshape(-1, O) * F.log_softmax(logits, dim=1)).sum()
        return loss / (T * B) if reduction == "mean" else loss
    return F.cross_entropy(logits, targets.reshape(-1), ignore_index=-1, reduction=reduction)


def make_problem(dtype, token_inputs, soft_targets, with_h0, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def leaf(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=generator, dtype=dtype)).requires_grad_()

    params = {
        "U": leaf(H, D, scale=0.4),
        "W": leaf(H, H, scale=0.4),
        "b": leaf(H, scale=0.1),
        "V": leaf(O, H, scale=0.4),
        "c": leaf(O, scale=0.1),
    }
    inputs = torch.randint(0, D, (T, B), generator=generator) if token_inputs else leaf(T, B, D)
    if soft_targets:
        targets = torch.softmax(torch.randn(T, B, O, generator=generator, dtype=dtype), dim=2)
    else:
        targets = torch.randint(-1, O, (T, B), generator=generator)  # -1: no loss there
    h0 = leaf(B, H) if with_h0 else None
    return params, inputs, targets, h0


def assert_equal_to_rounding(loss, expected_loss, grads, expected_grads, dtype):
    """The loss and each gradient equal to rounding over the T steps: sums of at most
    T·B·max(D, H, O) ≈ 100 products in another order than torch's."""
    closeness.assert_close(loss, expected_loss, dtype=dtype, terms=T, name="loss")
    for ours, theirs in zip(grads, expected_grads, strict=True):
        closeness.assert_close(ours, theirs, dtype=dtype, terms=T)


def gradients(loss, params, inputs, h0):
    leaves = [*params.values()]
    leaves += [inputs] if inputs.is_floating_point() else []
    leaves += [h0] if h0 is not None else []
    return torch.autograd.grad(loss, leaves)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("token_inputs", [False, True], ids=["float-inputs", "token-ids"])
@pytest.mark.parametrize("soft_targets", [False, True], ids=["class-ids", "soft-targets"])
@pytest.mark.parametrize("reduction", ["sum", "mean"])
def test_loss_and_every_gradient_equal_plain_torch_autograd(
    dtype, token_inputs, soft_targets, reduction
):
    params, inputs, targets, h0 = make_problem(dtype, token_inputs, soft_targets, with_h0=True)
    expected = plain_torch_loss(params, inputs, targets, h0, "tanh", reduction)
    got = rnn_softmax_loss(params, inputs, targets, h0=h0, reduction=reduction)
    assert got.dtype == dtype
    assert got.shape == ()
    assert_equal_to_rounding(
        got,
        expected,
        gradients(got, params, inputs, h0),
        gradients(expected, params, inputs, h0),
        dtype,
    )


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_other_activations_and_no_h0_equal_plain_torch_autograd(activation):
    params, inputs, targets, _ = make_problem(torch.float64, False, False, with_h0=False)
    expected = plain_torch_loss(params, inputs, targets, None, activation, "sum")
    got = rnn_softmax_loss(params, inputs, targets, activation=activation)
    assert_equal_to_rounding(
        got,
        expected,
        gradients(got, params, inputs, None),
        gradients(expected, params, inputs, None),
        torch.float64,
    )


def test_backward_scales_the_gradients_by_the_upstream_gradient():
    params, inputs, targets, h0 = make_problem(torch.float64, False, False, with_h0=True)
    once = gradients(rnn_softmax_loss(params, inputs, targets, h0=h0), params, inputs, h0)
    scaled = gradients(-2.5 * rnn_softmax_loss(params, inputs, targets, h0=h0), params, inputs, h0)
    for single, scaled_one in zip(once, scaled, strict=True):
        # one rounding of each product apart
        closeness.assert_close(scaled_one, -2.5 * single, dtype=torch.float64, terms=1)


def test_a_retained_graph_gives_the_same_gradients_on_every_backward():
    params, inputs, targets, h0 = make_problem(torch.float64, False, False, with_h0=True)
    loss = rnn_softmax_loss(params, inputs, targets, h0=h0)
    once = torch.autograd.grad(loss, list(params.values()), retain_graph=True)
    scaled = 3 * loss
    scaled.backward(retain_graph=True)
    scaled.backward()
    for param, single in zip(params.values(), once, strict=True):
        # a few roundings of each sum apart
        closeness.assert_close(param.grad, 6 * single, dtype=torch.float64, terms=3)


@pytest.mark.parametrize("differentiate", DIFFERENTIATE)
def test_differentiating_its_gradients_again_raises_instead_of_dropping_second_order_terms(
    differentiate,
):
    # grad(loss, ..., create_graph=True) passes an upstream gradient of ones, needing no grad.
    params, inputs, targets, h0 = make_problem(torch.float64, False, False, with_h0=True)
    loss = rnn_softmax_loss(params, inputs, targets, h0=h0)
    (d_c,) = torch.autograd.grad(loss, params["c"], create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        DIFFERENTIATE[differentiate](d_c.pow(2).sum() + loss, params["c"])


def test_gradients_taken_with_create_graph_are_the_first_order_gradients():
    params, inputs, targets, h0 = make_problem(torch.float64, False, False, with_h0=True)
    loss = rnn_softmax_loss(params, inputs, targets, h0=h0)
    leaves = [*params.values(), inputs, h0]
    plain = torch.autograd.grad(loss, leaves, retain_graph=True)
    with_graph = torch.autograd.grad(loss, leaves, create_graph=True)
    for expected, got in zip(plain, with_graph, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_h_last_is_the_last_hidden_state_without_a_gradient():
    params, inputs, targets, h0 = make_problem(torch.float64, False, False, with_h0=True)
    _, h_last = rnn_softmax_loss(params, inputs, targets, h0=h0, return_h_last=True)
    h = h0
    with torch.no_grad():
        for x in inputs:
            h = torch.tanh(params["b"] + h @ params["W"].T + x @ params["U"].T)
    closeness.assert_close(h_last, h, dtype=torch.float64, terms=T)
    assert not h_last.requires_grad


def test_an_unbatched_sequence_equals_a_batch_of_one():
    params, inputs, targets, h0 = make_problem(torch.float64, True, False, with_h0=True)
    batch = rnn_softmax_loss(params, inputs[:, :1], targets[:, :1], h0=h0[:1], return_h_last=True)
    alone = rnn_softmax_loss(params, inputs[:, 0], targets[:, 0], h0=h0[0], return_h_last=True)
    torch.testing.assert_close(alone[0], batch[0], rtol=0, atol=0)
    torch.testing.assert_close(alone[1], batch[1][0], rtol=0, atol=0)


def test_unbatched_inputs_with_0_d_targets_are_refused_naming_targets():
    params, inputs, targets, _ = make_problem(torch.float32, True, False, with_h0=False)
    with pytest.raises(ValueError, match=r"^targets: expected class ids \(T,\) or soft targets"):
        rnn_softmax_loss(params, inputs[:, 0], targets[0, 0])


def test_unbatched_inputs_with_a_batched_h0_are_refused_naming_h0():
    params, inputs, targets, h0 = make_problem(torch.float32, True, False, with_h0=True)
    with pytest.raises(ValueError, match=r"^h0: expected shape \(H,\) for unbatched inputs"):
        rnn_softmax_loss(params, inputs[:, 0], targets[:, 0], h0=h0[:1].detach())


@pytest.mark.parametrize("name", ["inputs", "targets", "h0", "params['W']"])
def test_sparse_tensors_are_refused_naming_the_argument_and_asking_for_a_dense_one(name):
    params, inputs, targets, h0 = make_problem(torch.float32, False, False, with_h0=True)
    arguments = {"inputs": inputs, "targets": targets, "h0": h0, "params['W']": params["W"]}
    arguments[name] = arguments[name].detach().to_sparse()
    params = params | {"W": arguments["params['W']"]}
    with pytest.raises(TypeError, match=rf"^{re.escape(name)}: expected a dense \(strided\)"):
        rnn_softmax_loss(params, arguments["inputs"], arguments["targets"], h0=arguments["h0"])


def nested(tensor):
    return torch.nested.nested_tensor(list(tensor))


def quantized(tensor):
    return torch.quantize_per_tensor(tensor.float(), 0.1, 0, torch.quint8)


@pytest.mark.filterwarnings("ignore::UserWarning")  # both kinds are prototypes or deprecated
@pytest.mark.parametrize(
    ("kind", "words"),
    [
        (nested, "expected a dense (strided) tensor, got a nested"),
        (quantized, "expected a float or integer tensor, got a quantized"),
    ],
    ids=["nested", "quantized"],
)
@pytest.mark.parametrize("name", ["inputs", "targets", "h0", "params['W']"])
def test_nested_and_quantized_tensors_are_refused_naming_the_argument(name, kind, words):
    params, inputs, targets, h0 = make_problem(torch.float32, False, False, with_h0=True)
    arguments = {"inputs": inputs, "targets": targets, "h0": h0, "params['W']": params["W"]}
    arguments[name] = kind(arguments[name].detach())
    params = params | {"W": arguments["params['W']"]}
    with pytest.raises(TypeError, match=rf"^{re.escape(name)}: {re.escape(words)}"):
        rnn_softmax_loss(params, arguments["inputs"], arguments["targets"], h0=arguments["h0"])


def test_params_without_exactly_U_W_b_V_c_are_refused():
    params, inputs, targets, _ = make_problem(torch.float32, True, False, with_h0=False)
    del params["c"]
    with pytest.raises(ValueError, match=r"^params: expected a dict with exactly the keys"):
        rnn_softmax_loss(params, inputs, targets)


def test_params_off_the_cpu_or_of_mixed_dtypes_are_refused_naming_the_param():
    params, inputs, targets, _ = make_problem(torch.float32, True, False, with_h0=False)
    with pytest.raises(TypeError, match=r"^params\['V'\]: expected a CPU tensor"):
        rnn_softmax_loss(params | {"V": torch.zeros(O, H, device="meta")}, inputs, targets)
    with pytest.raises(TypeError, match=r"^params\['W'\]: expected dtype torch.float32"):
        rnn_softmax_loss(params | {"W": torch.zeros(H, H, dtype=torch.float64)}, inputs, targets)


def test_soft_targets_that_require_a_gradient_are_refused():
    params, inputs, targets, _ = make_problem(torch.float32, True, True, with_h0=False)
    with pytest.raises(ValueError, match=r"^targets: soft targets get no gradient"):
        rnn_softmax_loss(params, inputs, targets.requires_grad_())


# -- memory budgets ------------------------------------------------------------------------------

# (T, B, D = O, H): long enough that a small budget computes states again (T = 7 keeps them all)
LONG = (400, 3, 8, 32)


def long_problem(token_inputs):
    long_T, long_B, size, hidden = LONG
    generator = torch.Generator().manual_seed(3)

    def leaf(*shape):
        return (0.4 * torch.randn(*shape, generator=generator)).requires_grad_()

    params = {
        "U": leaf(hidden, size),
        "W": leaf(hidden, hidden),
        "b": leaf(hidden),
        "V": leaf(size, hidden),
        "c": leaf(size),
    }
    inputs = (
        torch.randint(0, size, (long_T, long_B), generator=generator)
        if token_inputs
        else leaf(long_T, long_B, size)
    )
    targets = torch.randint(-1, size, (long_T, long_B), generator=generator)
    return params, inputs, targets, leaf(long_B, hidden)


@pytest.mark.parametrize("token_inputs", [False, True], ids=["float-inputs", "token-ids"])
def test_a_memory_budget_gives_the_same_loss_and_gradients_bit_for_bit(token_inputs):
    params, inputs, targets, h0 = long_problem(token_inputs)
    long_T, long_B, size, hidden = LONG
    sizes = (long_T, long_B, size, hidden, size)
    budget = 2 * bptt.memory_plan(*sizes, tokens=token_inputs).minimum_bytes
    plan = bptt.memory_plan(*sizes, tokens=token_inputs, memory_budget=budget)
    assert plan.schedule in ("segments", "binomial")
    results = []
    for memory_budget in (None, budget):
        loss, h_last = rnn_softmax_loss(
            params, inputs, targets, h0=h0, return_h_last=True, memory_budget=memory_budget
        )
        results.append([loss, h_last, *gradients(loss, params, inputs, h0)])
    for unbudgeted, budgeted in zip(*results, strict=True):
        torch.testing.assert_close(budgeted, unbudgeted, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("memory_budget", "error", "message"),
    [
        (1000, ValueError, r"expected at least \d+ bytes"),
        ("12 parsecs", ValueError, "expected a size such as"),
        (1.5, TypeError, "expected None, an integer"),
    ],
)
def test_a_memory_budget_below_the_minimum_or_not_a_size_is_refused_naming_it(
    memory_budget, error, message
):
    params, inputs, targets, _ = long_problem(True)
    with pytest.raises(error, match=f"^memory_budget: {message}"):
        rnn_softmax_loss(params, inputs, targets, memory_budget=memory_budget)
