"""The NumPy oracle against central finite differences and against the maths, in float64."""

import zlib
from typing import NamedTuple

import numpy as np
import pytest
from closeness import assert_close, finite_difference_tolerance

from bptt import _model, reference

T, B, D, H, O = 4, 2, 3, 5, 4  # tiny, so that every gradient entry can be checked
ACTIVATIONS = _model.ACTIVATIONS
INPUT_KINDS = ["float", "tokens"]
TARGET_KINDS = ["ids", "soft"]
PARAM_NAMES = _model.PARAM_NAMES

FD_STEP = 1e-6


class Problem(NamedTuple):
    params: dict
    inputs: np.ndarray
    targets: np.ndarray
    h0: np.ndarray


def make_problem(case, input_kind="float", target_kind="ids", steps=T, batch=B):
    """Random params of scale 0.5, a random non-zero h0 and targets; seeded by the case name."""
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    shapes = _model.parameter_shapes(D, H, O)
    params = {k: 0.5 * rng.standard_normal(shape) for k, shape in shapes.items()}
    if input_kind == "float":
        inputs = rng.standard_normal((steps, batch, D))
    else:
        inputs = rng.integers(0, D, (steps, batch))
    if target_kind == "ids":
        targets = rng.integers(0, O, (steps, batch))
        targets[rng.random((steps, batch)) < 0.25] = -1  # some steps carry no loss...
        targets[1::3, :1] = -1  # ...and at least one, whatever the seed
    else:
        targets = rng.random((steps, batch, O))  # non-negative, deliberately not summing to 1
    h0 = 0.5 * rng.standard_normal((batch, H))
    return Problem(params, inputs, targets, h0)


def loss_and_grad(problem, **kwargs):
    return reference.loss_and_grad(
        problem.params, problem.inputs, problem.targets, h0=problem.h0, **kwargs
    )


def differentiable_variables(problem):
    """The arrays dL/d· is reported for: the params, h0, and x when inputs are floats."""
    variables = {k: problem.params[k].copy() for k in PARAM_NAMES}
    variables["h0"] = problem.h0.copy()
    if np.issubdtype(problem.inputs.dtype, np.floating):
        variables["x"] = problem.inputs.copy()
    return variables


def central_differences(loss_of, variables):
    """(L(v + step e_i) - L(v - step e_i)) / (2 step) for every entry i of every variable."""
    fd = {}
    for name, value in variables.items():
        fd[name] = np.zeros_like(value)
        for i in np.ndindex(value.shape):
            original = value[i]
            value[i] = original + FD_STEP
            loss_up = loss_of(variables)
            value[i] = original - FD_STEP
            loss_down = loss_of(variables)
            value[i] = original
            fd[name][i] = (loss_up - loss_down) / (2 * FD_STEP)
    return fd


def assert_same_loss_and_grads(actual, expected):
    """Equal to float64 rounding over the T + 1 steps (the same sums in other forms)."""
    assert_close(actual.loss, expected.loss, dtype=np.float64, terms=T + 1, name="loss")
    assert actual.grads.keys() == expected.grads.keys()
    for name in expected.grads:
        assert_close(
            actual.grads[name], expected.grads[name], dtype=np.float64, terms=T + 1, name=name
        )


@pytest.mark.parametrize("target_kind", TARGET_KINDS)
@pytest.mark.parametrize("input_kind", INPUT_KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_gradient_entry_equals_the_central_finite_difference(
    activation, input_kind, target_kind
):
    problem = make_problem(f"fd-{activation}-{input_kind}-{target_kind}", input_kind, target_kind)

    def loss_of(v):
        params = {k: v[k] for k in PARAM_NAMES}
        inputs = v.get("x", problem.inputs)
        return reference.loss_and_grad(
            params, inputs, problem.targets, h0=v["h0"], activation=activation
        ).loss

    result = loss_and_grad(problem, activation=activation)
    expected = central_differences(loss_of, differentiable_variables(problem))

    assert result.grads.keys() == expected.keys()
    for name, fd in expected.items():
        assert result.grads[name].shape == fd.shape, name
        tolerance = finite_difference_tolerance(result.loss, FD_STEP)
        np.testing.assert_allclose(result.grads[name], fd, rtol=0, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("target_kind", TARGET_KINDS)
def test_mean_reduction_is_the_sum_divided_by_the_counted_targets(target_kind):
    problem = make_problem(f"mean-{target_kind}", target_kind=target_kind)
    counted = np.count_nonzero(problem.targets != -1) if target_kind == "ids" else T * B

    summed = loss_and_grad(problem, reduction="sum")
    mean = loss_and_grad(problem, reduction="mean")

    assert_close(mean.loss, summed.loss / counted, dtype=np.float64, terms=T + 1, name="loss")
    for name in summed.grads:
        expected = summed.grads[name] / counted
        assert_close(mean.grads[name], expected, dtype=np.float64, terms=T + 1, name=name)


@pytest.mark.parametrize("input_kind", INPUT_KINDS)
def test_ignored_targets_contribute_nothing(input_kind):
    problem = make_problem(f"ignored-{input_kind}", input_kind)
    ignored = problem.targets == -1
    assert ignored.any()
    assert not ignored.all()
    # the same targets as soft one-hot rows, with all-zero rows where the id is -1
    soft = (problem.targets[..., None] == np.arange(O)).astype(np.float64)
    assert not soft[ignored].any()

    with_ids = loss_and_grad(problem)
    with_zero_rows = loss_and_grad(problem._replace(targets=soft))

    assert_same_loss_and_grads(with_ids, with_zero_rows)


def test_mean_with_every_target_ignored_gives_zero_loss_and_zero_gradients():
    problem = make_problem("all-ignored")
    problem = problem._replace(targets=np.full((T, B), -1))

    result = loss_and_grad(problem, reduction="mean")

    assert result.loss == 0.0
    for name, grad in result.grads.items():
        assert not grad.any(), name


@pytest.mark.parametrize("target_kind", TARGET_KINDS)
@pytest.mark.parametrize("input_kind", INPUT_KINDS)
def test_unbatched_inputs_give_the_batch_of_one_results_without_the_batch_axis(
    input_kind, target_kind
):
    batched = make_problem(
        f"unbatched-{input_kind}-{target_kind}", input_kind, target_kind, batch=1
    )
    unbatched = Problem(batched.params, batched.inputs[:, 0], batched.targets[:, 0], batched.h0[0])

    fwd_b = reference.forward(batched.params, batched.inputs, h0=batched.h0)
    fwd_u = reference.forward(unbatched.params, unbatched.inputs, h0=unbatched.h0)
    for name in reference.ForwardResult._fields:
        np.testing.assert_array_equal(getattr(fwd_u, name), getattr(fwd_b, name)[..., 0, :])

    lg_b = loss_and_grad(batched)
    lg_u = loss_and_grad(unbatched)
    assert lg_u.loss == lg_b.loss
    np.testing.assert_array_equal(lg_u.h_last, lg_b.h_last[0])
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(lg_u.grads[name], lg_b.grads[name])
    np.testing.assert_array_equal(lg_u.grads["h0"], lg_b.grads["h0"][0])
    if "x" in lg_b.grads:
        np.testing.assert_array_equal(lg_u.grads["x"], lg_b.grads["x"][:, 0])


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("target_kind", TARGET_KINDS)
@pytest.mark.parametrize("input_kind", INPUT_KINDS)
@pytest.mark.parametrize(("steps", "batch"), [(0, B), (T, 0), (0, 0)])
def test_empty_sequence_or_batch_gives_zero_loss_and_zero_gradients_of_the_right_shapes(
    steps, batch, input_kind, target_kind, reduction
):
    problem = make_problem("empty", input_kind, target_kind, steps=steps, batch=batch)

    fwd = reference.forward(problem.params, problem.inputs, h0=problem.h0)
    result = loss_and_grad(problem, reduction=reduction)

    assert fwd.hidden.shape == (steps, batch, H)
    assert fwd.logits.shape == (steps, batch, O)
    np.testing.assert_array_equal(fwd.h_last, problem.h0)  # no step taken, or no sequence
    np.testing.assert_array_equal(result.h_last, problem.h0)
    assert result.loss == 0.0
    expected_shapes = {k: v.shape for k, v in differentiable_variables(problem).items()}
    assert {k: g.shape for k, g in result.grads.items()} == expected_shapes
    for name, grad in result.grads.items():
        assert not grad.any(), name


def test_missing_h0_means_a_zero_initial_state():
    problem = make_problem("no-h0")

    without_h0 = reference.loss_and_grad(problem.params, problem.inputs, problem.targets)
    with_zeros = loss_and_grad(problem._replace(h0=np.zeros((B, H))))

    assert without_h0.loss == with_zeros.loss
    assert without_h0.grads.keys() == with_zeros.grads.keys()
    for name, grad in with_zeros.grads.items():
        np.testing.assert_array_equal(without_h0.grads[name], grad, err_msg=name)
    assert reference.forward(problem.params, np.zeros((0, B, D))).h_last.shape == (B, H)


@pytest.mark.parametrize("target_kind", TARGET_KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_logits_of_magnitude_1e4_give_a_finite_loss_and_finite_gradients(activation, target_kind):
    problem = make_problem(f"huge-{activation}-{target_kind}", target_kind=target_kind)
    logits = reference.forward(problem.params, problem.inputs, h0=problem.h0, activation=activation)
    scale = 1e4 / np.abs(logits.logits).max()
    params = dict(problem.params, V=problem.params["V"] * scale, c=problem.params["c"] * scale)
    huge = problem._replace(params=params)

    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow is expected
        logits = reference.forward(huge.params, huge.inputs, h0=huge.h0, activation=activation)
        result = loss_and_grad(huge, activation=activation)

    assert np.abs(logits.logits).max() == pytest.approx(1e4)
    assert np.isfinite(result.loss)
    assert result.loss > 0
    for name, grad in result.grads.items():
        assert np.isfinite(grad).all(), name


@pytest.mark.parametrize("target_kind", TARGET_KINDS)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_agrees_with_what_loss_and_grad_uses(activation, target_kind):
    problem = make_problem(f"agree-{activation}-{target_kind}", target_kind=target_kind)

    fwd = reference.forward(problem.params, problem.inputs, h0=problem.h0, activation=activation)
    result = loss_and_grad(problem, activation=activation)

    np.testing.assert_array_equal(result.h_last, fwd.h_last)
    np.testing.assert_array_equal(fwd.hidden[-1], fwd.h_last)
    # L = - Σ y · log softmax(o), written independently from forward's logits
    if target_kind == "ids":
        y = (problem.targets[..., None] == np.arange(O)).astype(np.float64)
    else:
        y = problem.targets
    log_y_hat = fwd.logits - np.log(np.exp(fwd.logits).sum(axis=-1, keepdims=True))
    assert_close(result.loss, -np.sum(y * log_y_hat), dtype=np.float64, terms=T + 1, name="loss")


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_follows_the_models_recurrence_one_sequence_at_a_time(activation):
    problem = make_problem(f"recurrence-{activation}")
    U, W, b, V, c = (problem.params[k] for k in PARAM_NAMES)
    sigma = {
        "tanh": np.tanh,
        "sigmoid": lambda a: 1 / (1 + np.exp(-a)),
        "relu": lambda a: np.where(a > 0, a, 0.0),
        "identity": lambda a: a,
    }[activation]

    fwd = reference.forward(problem.params, problem.inputs, h0=problem.h0, activation=activation)

    for n in range(B):  # column vectors, exactly as Goodfellow et al. write it (10.2.2)
        h = problem.h0[n]
        for t in range(T):
            h = sigma(b + W @ h + U @ problem.inputs[t, n])
            assert_close(fwd.hidden[t, n], h, dtype=np.float64, terms=t + 1, name="h_t")
            assert_close(fwd.logits[t, n], c + V @ h, dtype=np.float64, terms=t + 1, name="o_t")


def test_token_ids_act_as_one_hot_float_inputs():
    problem = make_problem("tokens", input_kind="tokens")
    one_hot = (problem.inputs[..., None] == np.arange(D)).astype(np.float64)

    with_tokens = loss_and_grad(problem)
    with_one_hot = loss_and_grad(problem._replace(inputs=one_hot))

    assert "x" not in with_tokens.grads
    assert with_one_hot.grads.pop("x").shape == one_hot.shape
    assert_same_loss_and_grads(with_tokens, with_one_hot)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_results_are_computed_in_the_dtype_of_the_params(dtype):
    problem = make_problem("dtype")
    params = {k: p.astype(dtype) for k, p in problem.params.items()}

    fwd = reference.forward(params, problem.inputs, h0=problem.h0)
    result = reference.loss_and_grad(params, problem.inputs, problem.targets, h0=problem.h0)

    assert fwd.hidden.dtype == fwd.logits.dtype == fwd.h_last.dtype == dtype
    assert result.h_last.dtype == dtype
    assert isinstance(result.loss, float)
    for name, grad in result.grads.items():
        assert grad.dtype == dtype, name


def test_relu_derivative_at_exactly_zero_is_zero():
    problem = make_problem("relu-kink")
    # U, W, b = 0 puts every pre-activation a_t exactly on the kink of relu
    params = dict(problem.params, U=np.zeros((H, D)), W=np.zeros((H, H)), b=np.zeros(H))

    result = reference.loss_and_grad(
        params, problem.inputs, problem.targets, h0=problem.h0, activation="relu"
    )

    for name in ("U", "W", "b", "h0", "x"):
        assert not result.grads[name].any(), name


@pytest.mark.parametrize(
    ("argument", "change"),
    [
        ("activation", {"activation": "softplus"}),
        ("reduction", {"reduction": "max"}),
        ("inputs", {"inputs": np.full((T, B), D)}),  # token id D is outside 0..D-1
        ("targets", {"targets": np.full((T, B), -2)}),  # only -1 means "ignore"
        ("h0", {"h0": np.zeros((H, B))}),  # (B, H) transposed: no silent reshape
        ("targets", {"targets": np.full((B, T, O), 1.0 / O)}),  # soft targets, axes swapped
        ("targets", {"targets": np.zeros((T, B, 1), np.int64)}),
    ],
)
def test_invalid_argument_is_a_value_error_naming_it(argument, change):
    problem = make_problem("bad-argument")
    arrays = {k: v for k, v in change.items() if k in Problem._fields}
    options = {k: v for k, v in change.items() if k not in Problem._fields}

    with pytest.raises(ValueError, match=argument):
        loss_and_grad(problem._replace(**arrays), **options)


def params_with(name, value):
    params = dict(make_problem("bad-param").params)
    if value is None:
        del params[name]
    else:
        params[name] = value
    return params


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda p: reference.forward(params_with("W", None), p.inputs),
            ValueError,
            "params: .* missing W",
        ),
        (
            lambda p: reference.forward(params_with("U", p.params["U"].astype(int)), p.inputs),
            TypeError,
            r"params\['U'\]: expected dtype float32 or float64, got int64",
        ),
        (
            lambda p: reference.forward(params_with("W", p.params["W"][:, :2]), p.inputs),
            ValueError,
            r"params\['W'\]: expected shape \(H, H\) = \(5, 5\), got \(5, 2\)",
        ),
        (
            lambda p: reference.head_logits(
                params_with("c", p.params["c"][:2]), np.zeros((T, B, H))
            ),
            ValueError,
            r"params\['c'\]: expected shape \(O,\) = \(4,\), got \(2,\)",
        ),
        (
            lambda p: reference.forward(p.params, p.inputs.astype(bool)),
            TypeError,
            "inputs: expected float vectors or integer token ids, got dtype bool",
        ),
        (
            lambda p: reference.forward(p.params, p.inputs[..., :2]),
            ValueError,
            r"inputs: expected shape \(T, B, D\) or \(T, D\) with D = 3",
        ),
        (
            lambda p: reference.forward(p.params, p.inputs, activation=[]),
            TypeError,
            "activation: expected a string, got list",
        ),
        (
            lambda p: reference.layer_forward(p.params, p.inputs, lengths=[1.0, 2.0]),
            TypeError,
            "lengths: expected integer lengths, got dtype float64",
        ),
        (
            lambda p: reference.layer_forward(p.params, p.inputs[:, 0], lengths=[1]),
            ValueError,
            "lengths: per-sequence lengths need a batch",
        ),
        (
            lambda p: reference.head_logits(p.params, np.zeros((T, B, H + 1))),
            ValueError,
            r"hidden: expected shape \(T, B, H\) or \(T, H\) with H = 5",
        ),
        (
            lambda p: reference.head_logits(p.params, [[0.0], [1.0, 2.0]]),
            ValueError,
            "hidden: expected an array, got list",
        ),
    ],
    ids=[
        "no W",
        "int U",
        "W of another shape",
        "c of another shape",
        "bool inputs",
        "inputs of another D",
        "activation a list",
        "float lengths",
        "lengths unbatched",
        "hidden of another H",
        "ragged hidden",
    ],
)
def test_the_oracle_refuses_bad_arguments_naming_them_as_the_api_does(call, error, message):
    with pytest.raises(error, match=f"^{message}"):
        call(make_problem("bad-argument"))


def test_the_oracle_runs_no_step_of_an_empty_batch_however_many_steps():
    params = make_problem("empty").params
    empty = np.broadcast_to(np.int64(0), (2**40, 0))  # no memory, and no step changes anything
    result = reference.loss_and_grad(params, empty, empty)
    assert result.loss == 0.0
    assert result.h_last.shape == (0, H)


# ---------------------------------------------------------------------------------------------
# The layer and the head on their own.

LENGTHS = np.array([T, 1])  # the second sequence has one real step, then padding


def assert_matches_central_differences(grads, loss_of, variables):
    expected = central_differences(loss_of, variables)
    assert grads.keys() == expected.keys()
    tolerance = finite_difference_tolerance(loss_of(variables), FD_STEP)
    for name, fd in expected.items():
        assert grads[name].shape == fd.shape, name
        np.testing.assert_allclose(grads[name], fd, rtol=0, atol=tolerance, err_msg=name)


@pytest.mark.parametrize("padded", [False, True], ids=["full", "padded"])
@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_layer_backward_equals_the_central_differences_of_a_loss_on_the_states(
    activation, reverse, padded
):
    # L = Σ_t G_t · h_t over the real steps + G_last · h_last, for fixed random G_t, G_last
    problem = make_problem(f"layer-{activation}-{reverse}-{padded}")
    rng = np.random.default_rng(1)
    d_hidden, d_h_last = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    lengths = LENGTHS if padded else None
    real_steps = LENGTHS if padded else np.full(B, T)
    real = (np.arange(T)[:, None] < real_steps)[..., None]  # d_hidden is ignored at padding
    options = {"activation": activation, "lengths": lengths, "reverse": reverse}

    def loss_of(v):
        layer = reference.layer_forward(v, v["x"], h0=v["h0"], **options)
        return float(np.sum(d_hidden * layer.hidden * real) + np.sum(d_h_last * layer.h_last))

    variables = {k: problem.params[k].copy() for k in ("U", "W", "b")}
    variables.update(h0=problem.h0.copy(), x=problem.inputs.copy())
    hidden = reference.layer_forward(variables, problem.inputs, h0=problem.h0, **options).hidden
    grads = reference.layer_backward(
        variables,
        problem.inputs,
        hidden,
        h0=problem.h0,
        d_hidden=d_hidden,
        d_h_last=d_h_last,
        **options,
    )

    assert_matches_central_differences(grads, loss_of, variables)


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("target_kind", TARGET_KINDS)
def test_head_loss_and_grad_equals_the_central_differences_of_its_loss(target_kind, reduction):
    problem = make_problem(f"head-{target_kind}-{reduction}", target_kind=target_kind)
    hidden = np.random.default_rng(2).uniform(-1, 1, (T, B, H))

    def loss_of(v):
        return reference.head_loss_and_grad(
            v, v["hidden"], problem.targets, reduction=reduction
        ).loss

    variables = {"V": problem.params["V"].copy(), "c": problem.params["c"].copy(), "hidden": hidden}
    head = reference.head_loss_and_grad(variables, hidden, problem.targets, reduction=reduction)

    assert head.loss == loss_of(variables)
    assert_matches_central_differences(head.grads | {"hidden": head.d_hidden}, loss_of, variables)


def test_head_logits_are_c_plus_V_h_at_every_step():
    problem = make_problem("logits")
    hidden = np.random.default_rng(3).uniform(-1, 1, (T, B, H))
    V, c = problem.params["V"], problem.params["c"]

    logits = reference.head_logits(problem.params, hidden)

    for t in range(T):
        for n in range(B):  # column vectors, exactly as Goodfellow et al. write them (10.2.2)
            assert_close(logits[t, n], c + V @ hidden[t, n], dtype=np.float64, terms=H, name="o_t")


@pytest.mark.parametrize("input_kind", INPUT_KINDS)
def test_the_layer_then_the_head_then_the_layer_backwards_give_loss_and_grad(input_kind):
    problem = make_problem(f"composed-{input_kind}", input_kind)
    params, inputs, h0 = problem.params, problem.inputs, problem.h0

    layer = reference.layer_forward(params, inputs, h0=h0)
    head = reference.head_loss_and_grad(params, layer.hidden, problem.targets)
    layer_grads = reference.layer_backward(
        params, inputs, layer.hidden, h0=h0, d_hidden=head.d_hidden
    )
    whole = loss_and_grad(problem)

    np.testing.assert_array_equal(layer.h_last, whole.h_last)
    assert_same_loss_and_grads(
        reference.LossAndGrad(head.loss, layer_grads | head.grads, None), whole
    )


def test_padded_steps_keep_the_state_they_read_in_either_direction():
    problem = make_problem("padding")
    params, inputs, h0 = problem.params, problem.inputs, problem.h0

    forward = reference.layer_forward(params, inputs, h0=h0, lengths=LENGTHS)
    backward = reference.layer_forward(params, inputs, h0=h0, lengths=LENGTHS, reverse=True)

    # sequence 1 runs its one real step, t = 1, from h0 either way, and keeps that state after
    one_step = reference.layer_forward(params, inputs[:1, 1], h0=h0[1])
    for layer in (forward, backward):
        np.testing.assert_array_equal(layer.hidden[0, 1], one_step.h_last)
    np.testing.assert_array_equal(
        forward.hidden[1:, 1], np.broadcast_to(one_step.h_last, (T - 1, H))
    )
    np.testing.assert_array_equal(backward.hidden[1:, 1], np.broadcast_to(h0[1], (T - 1, H)))
    np.testing.assert_array_equal(forward.h_last[1], one_step.h_last)
    np.testing.assert_array_equal(backward.h_last[1], one_step.h_last)


def test_reverse_is_the_forward_recurrence_on_the_time_reversed_sequence():
    problem = make_problem("reverse")
    params, inputs, h0 = problem.params, problem.inputs, problem.h0

    backward = reference.layer_forward(params, inputs, h0=h0, reverse=True)
    flipped = reference.layer_forward(params, inputs[::-1], h0=h0)

    np.testing.assert_array_equal(backward.hidden, flipped.hidden[::-1])
    np.testing.assert_array_equal(backward.h_last, flipped.h_last)
