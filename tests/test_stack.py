"""Stacked Elman layers (bptt.stack): the gradients of the composition of the core's layer ops
against the NumPy oracle of a stack (reference.stack_loss_and_grad), and the oracle against
central finite differences; the parameters' names and shapes, and their initial values."""

import closeness
import numpy as np
import pytest

import bptt
from bptt import reference, stack
from bptt.errors import SettingError
from bptt.training_config import TrainConfig

T, B, D, H = 7, 3, 5, 4
FD_STEP = 1e-6


def problem(layers: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    shapes = stack.parameter_shapes(D, H, D, layers)
    params = {name: rng.uniform(-0.8, 0.8, shape) for name, shape in shapes.items()}
    inputs = rng.integers(0, D, (T, B))
    targets = rng.integers(0, D, (T, B))
    h0 = rng.uniform(-0.5, 0.5, (layers, B, H))
    return params, inputs, targets, h0


def oracle(params, inputs, targets, h0, layers, activation="tanh"):
    """reference.stack_loss_and_grad, its gradients by bptt.stack's names."""
    by_layer = [
        dict(zip("UWb", (params[name] for name in stack.layer_names(k)), strict=True))
        for k in range(1, layers + 1)
    ]
    loss, layer_grads, head_grads = reference.stack_loss_and_grad(
        by_layer, params, inputs, targets, h0=h0, activation=activation, reduction="mean"
    )
    grads = dict(head_grads)
    for k, grad in enumerate(layer_grads, start=1):
        grads.update(zip(stack.layer_names(k), (grad[name] for name in "UWb"), strict=True))
    return loss, grads


@pytest.mark.parametrize("activation", ["tanh", "relu"])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_the_stacks_gradients_equal_the_oracles(layers, activation):
    params, inputs, targets, h0 = problem(layers)
    out = {name: np.empty_like(value) for name, value in params.items()}
    result = stack.loss_and_grad(
        params, inputs, targets, h0=h0, activation=activation, reduction="mean", out=out
    )
    loss, grads = oracle(params, inputs, targets, h0, layers, activation)
    # the longest chain of roundings: T + 1 steps through each of the layers
    terms = layers * (T + 1)
    closeness.assert_close(result.loss, loss, dtype=np.float64, terms=terms, name="loss")
    assert result.grads.keys() == grads.keys()
    for name, expected in grads.items():
        closeness.assert_close(out[name], expected, dtype=np.float64, terms=terms, name=name)
    # the last states: the oracle's forward, layer by layer
    below = inputs
    for k in range(layers):
        layer = dict(zip("UWb", (params[n] for n in stack.layer_names(k + 1)), strict=True))
        forward = reference.layer_forward(layer, below, h0=h0[k], activation=activation)
        closeness.assert_close(
            result.h_last[k], forward.h_last, dtype=np.float64, terms=terms, name=f"h_last {k}"
        )
        below = forward.hidden


def test_the_stack_oracle_equals_central_finite_differences():
    layers = 2
    params, inputs, targets, h0 = problem(layers, seed=1)
    loss, grads = oracle(params, inputs, targets, h0, layers)
    rng = np.random.default_rng(2)
    for name, value in params.items():
        for index in map(tuple, rng.integers(0, value.shape, (3, value.ndim))):
            moved = {key: array.copy() for key, array in params.items()}
            moved[name][index] += FD_STEP
            above = oracle(moved, inputs, targets, h0, layers)[0]
            moved[name][index] -= 2 * FD_STEP
            below = oracle(moved, inputs, targets, h0, layers)[0]
            difference = (above - below) / (2 * FD_STEP)
            tolerance = closeness.finite_difference_tolerance(loss, FD_STEP)
            assert abs(grads[name][index] - difference) <= tolerance, (name, index)


def test_a_stack_names_its_upper_layers_by_their_number():
    shapes = stack.parameter_shapes(D, H, 6, 3)
    assert list(shapes) == ["U", "W", "b", "U2", "W2", "b2", "U3", "W3", "b3", "V", "c"]
    assert (shapes["U"], shapes["U2"], shapes["W3"], shapes["V"]) == (
        (H, D),
        (H, H),
        (H, H),
        (6, H),
    )
    assert stack.layer_count(shapes) == 3
    assert stack.param_names(3) == tuple(shapes)


def test_the_first_layer_and_head_of_a_stack_are_a_one_layer_runs_weights():
    one = bptt.init_params(D, H, D, dtype=np.float32, seed=5)
    stacked = stack.init_params(D, H, D, 2, dtype=np.float32, seed=5)
    for name, value in one.items():
        np.testing.assert_array_equal(stacked[name], value)
    # upper layers: uniform in ±1/sqrt(H), as torch.nn.RNN's
    assert np.abs(stacked["W2"]).max() <= 1 / np.sqrt(H)
    assert not np.array_equal(stacked["W2"], stacked["W"])


def test_an_orthogonal_init_draws_every_recurrent_weight_orthogonal_and_keeps_the_rest():
    uniform = stack.init_params(D, H, D, 2, dtype=np.float64, seed=5)
    orthogonal = stack.init_params(D, H, D, 2, dtype=np.float64, seed=5, init="orthogonal")
    for name in ("W", "W2"):
        # Q^T Q = I to rounding: H-term dot products of unit-size entries
        closeness.assert_close(
            orthogonal[name].T @ orthogonal[name], np.eye(H), dtype=np.float64, terms=H
        )
    assert not np.array_equal(orthogonal["W"], orthogonal["W2"])
    for name in ("U", "b", "U2", "b2", "V", "c"):
        np.testing.assert_array_equal(orthogonal[name], uniform[name])


def test_an_unknown_init_is_refused_by_name():
    with pytest.raises(ValueError, match="init: expected one of uniform, orthogonal, got 'zeros'"):
        stack.init_params(D, H, D, 1, dtype=np.float64, seed=0, init="zeros")


def test_the_stacks_forward_gives_the_logits_of_its_loss():
    params, inputs, targets, h0 = problem(2)
    logits, h_last = stack.forward(params, inputs, h0=h0)
    log_y_hat = reference._log_softmax(logits)
    picked = np.take_along_axis(log_y_hat, targets[..., None], axis=-1)
    out = {name: np.empty_like(value) for name, value in params.items()}
    result = stack.loss_and_grad(params, inputs, targets, h0=h0, reduction="mean", out=out)
    closeness.assert_close(-picked.mean(), result.loss, dtype=np.float64, terms=2 * (T + 1))
    np.testing.assert_array_equal(h_last, result.h_last)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"layers": 0}, "layers: expected an integer >= 1, got 0"),
        ({"layers": 2, "memory_budget": "1MiB"}, "memory_budget.*one-layer run's steps only"),
        ({"init": "zeros"}, "init: expected one of uniform, orthogonal, got 'zeros'"),
        ({"lr_schedule": "step"}, "lr_schedule: expected one of constant, cosine, got 'step'"),
    ],
)
def test_a_run_refuses_bad_layers_init_and_schedule_by_name(settings, message):
    with pytest.raises(SettingError, match=message):
        TrainConfig(**settings).check()


# -- bad arguments --------------------------------------------------------------------------------


SOFT_TARGETS = np.full((T, B, D), 1.0 / D)


def overlapping_views(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two float64 arrays of `size` in one buffer, the second one scalar further on."""
    buffer = np.zeros(size + 1)
    return buffer[:size], buffer[1:]


def stack_call(changes=None, out_changes=None):
    """stack.loss_and_grad on a 2-layer problem with some arguments replaced, and the params it
    reads."""
    params, inputs, targets, h0 = problem(2)
    out = {name: np.empty_like(value) for name, value in params.items()}
    out.update((out_changes or (lambda params, out: {}))(params, out))
    arguments = {"params": params, "inputs": inputs, "targets": targets, "h0": h0, "out": out}
    arguments.update(changes or {})
    return (lambda: stack.loss_and_grad(**arguments)), params


@pytest.mark.parametrize(
    ("changes", "out_changes", "error", "message"),
    [
        (
            {"h0": None},
            None,
            ValueError,
            r"h0: expected every layer's state, \(L, B, H\) or \(L, H\) with L = 2, got None",
        ),
        (
            {"h0": np.zeros((1, B, H))},
            None,
            ValueError,
            r"h0: expected every layer's .* got shape \(1, 3, 4\)",
        ),
        (
            {"out": {}},
            None,
            ValueError,
            "out: expected an array for every parameter, got none for 'U'",
        ),
        ({"out": [0]}, None, TypeError, "out: expected a mapping of arrays by name, got list"),
        (
            None,
            lambda params, out: {"W2": np.zeros((H, H), np.float32)},
            ValueError,
            r"out\['W2'\]: expected a writable float64 array of shape \(4, 4\), got float32",
        ),
        (
            None,
            lambda params, out: {"V": params["V"]},
            ValueError,
            r"out\['V'\]: expected an array of its own, got one sharing memory with params\['V'\]",
        ),
        (
            None,
            lambda params, out: {"W2": params["U2"].T},
            ValueError,
            r"out\['W2'\]: expected an array of its own, got one sharing memory with params\['U2'\]",
        ),
        (
            None,
            lambda params, out: {"b2": out["b"]},
            ValueError,
            r"out\['b2'\]: expected an array of its own, got one sharing memory with out\['b'\]",
        ),
        (
            None,
            lambda params, out: dict(zip(["b", "b2"], overlapping_views(H), strict=True)),
            ValueError,
            r"out\['b2'\]: expected an array of its own, got one sharing memory with out\['b'\]",
        ),
        (
            {"targets": SOFT_TARGETS},
            lambda params, out: {"c": SOFT_TARGETS[0, 0]},
            ValueError,
            r"out\['c'\]: expected an array of its own, got one sharing memory with targets",
        ),
    ],
    ids=[
        "h0 None",
        "h0 of one layer",
        "out empty",
        "out a list",
        "out of another dtype",
        "out the params",
        "out a view of another param",
        "out the same array for two gradients",
        "out overlapping views",
        "out a view of the targets",
    ],
)
def test_a_stack_refuses_bad_states_and_outs_by_name_and_leaves_the_params(
    changes, out_changes, error, message
):
    call, params = stack_call(changes, out_changes)
    before = {name: value.copy() for name, value in params.items()}
    with pytest.raises(error, match=f"^{message}"):
        call()
    for name, value in params.items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert (SOFT_TARGETS == 1.0 / D).all()


def test_a_stack_missing_a_layers_parameter_is_refused_naming_it():
    params, inputs, *_ = problem(2)
    del params["W2"]
    with pytest.raises(ValueError, match=r"^params: expected W2 among a 2-layer stack's, got none"):
        stack.forward(params, inputs)


@pytest.mark.parametrize("layers", [0, -1, 1.5, True])
def test_a_stack_of_no_layers_is_refused(layers):
    with pytest.raises(ValueError, match=f"^layers: expected an integer >= 1, got {layers!r}"):
        stack.init_params(D, H, D, layers, dtype=np.float64, seed=0)


def test_a_stack_without_a_seed_draws_a_fresh_one():
    first, second = (stack.init_params(D, H, D, 2, dtype=np.float64, seed=None) for _ in range(2))
    assert not np.array_equal(first["U2"], second["U2"])
