"""bptt.jax.loss and bptt.jax.rnn against the same model written with lax.scan and
differentiated by JAX itself: values and gradients, under jax.jit and jax.grad, in float32 and
(with jax_enable_x64) float64."""

import closeness
import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp

import bptt
import bptt.jax

T, B, D, H, O = 7, 3, 5, 6, 4
ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "sigmoid": jax.nn.sigmoid}


def scan_rnn(params, inputs, h0, activation, reverse=False):
    """h_t = act(b + W h_{t-1} + U x_t) with lax.scan; token ids pick columns of U."""
    U, W, b = params["U"], params["W"], params["b"]
    projected = U.T[inputs] if jnp.issubdtype(inputs.dtype, jnp.integer) else inputs @ U.T

    def step(h, projected_x):
        h = ACTIVATIONS[activation](b + h @ W.T + projected_x)
        return h, h

    h_last, hidden = jax.lax.scan(step, h0, projected, reverse=reverse)
    return hidden, h_last


def scan_loss(params, inputs, targets, h0, activation, reduction):
    """L = -Σ_t y_t · log softmax(c + V h_t), class id -1 counting for nothing."""
    hidden, _ = scan_rnn(params, inputs, h0, activation)
    log_probabilities = jax.nn.log_softmax(hidden @ params["V"].T + params["c"])
    if jnp.issubdtype(targets.dtype, jnp.floating):
        losses, counted = -(targets * log_probabilities).sum(-1), jnp.ones(targets.shape[:2])
    else:
        counted = targets >= 0
        picked = jnp.take_along_axis(log_probabilities, jnp.maximum(targets, 0)[..., None], -1)
        losses = -picked[..., 0] * counted
    total = losses.sum()
    return total / jnp.maximum(counted.sum(), 1) if reduction == "mean" else total


def make_problem(dtype, token_inputs=False, soft_targets=False, seed=0):
    rng = np.random.default_rng(seed)
    params = {
        name: jnp.asarray(value)
        for name, value in bptt.init_params(D, H, O, dtype=dtype, seed=seed).items()
    }
    if token_inputs:
        inputs = jnp.asarray(rng.integers(0, D, (T, B)))
    else:
        inputs = jnp.asarray(rng.standard_normal((T, B, D)).astype(dtype))
    if soft_targets:
        targets = jax.nn.softmax(jnp.asarray(rng.standard_normal((T, B, O)).astype(dtype)))
    else:
        targets = jnp.asarray(rng.integers(-1, O, (T, B)))  # -1: no loss there
    h0 = jnp.asarray(rng.standard_normal((B, H)).astype(dtype))
    return params, inputs, targets, h0


def assert_close(got, expected, dtype):
    """Leaf by leaf, of one dtype, equal to rounding over the T steps: the sums of at most
    T·B·max(D, H, O) ≈ 100 products run in another order than XLA's."""
    for got_leaf, expected_leaf in zip(
        jax.tree.leaves(got), jax.tree.leaves(expected), strict=True
    ):
        assert np.asarray(got_leaf).dtype == np.asarray(expected_leaf).dtype
        closeness.assert_close(got_leaf, expected_leaf, dtype=dtype, terms=T)


@pytest.mark.parametrize(
    ("token_inputs", "soft_targets", "reduction", "activation"),
    [
        (False, False, "sum", "tanh"),
        (True, False, "sum", "tanh"),
        (False, True, "sum", "tanh"),
        (True, True, "mean", "tanh"),
        (False, False, "mean", "relu"),
        (True, False, "sum", "sigmoid"),
    ],
    ids=[
        "floats-classes-sum-tanh",
        "tokens-classes-sum-tanh",
        "floats-soft-sum-tanh",
        "tokens-soft-mean-tanh",
        "floats-classes-mean-relu",
        "tokens-classes-sum-sigmoid",
    ],
)
def test_loss_and_its_gradients_equal_jax_grad_of_a_scan(
    token_inputs, soft_targets, reduction, activation
):
    params, inputs, targets, h0 = make_problem(np.float32, token_inputs, soft_targets)
    argnums = (0, 3) if token_inputs else (0, 1, 3)

    def ours(params, inputs, targets, h0):
        return bptt.jax.loss(
            params, inputs, targets, h0=h0, activation=activation, reduction=reduction
        )

    def reference(params, inputs, targets, h0):
        return scan_loss(params, inputs, targets, h0, activation, reduction)

    got = jax.jit(jax.value_and_grad(ours, argnums))(params, inputs, targets, h0)
    expected = jax.value_and_grad(reference, argnums)(params, inputs, targets, h0)
    assert_close(got, expected, np.float32)


@pytest.mark.parametrize(
    ("token_inputs", "reverse", "activation"),
    [(False, False, "tanh"), (False, True, "relu"), (True, False, "relu"), (True, True, "tanh")],
    ids=[
        "floats-forward-tanh",
        "floats-reverse-relu",
        "tokens-forward-relu",
        "tokens-reverse-tanh",
    ],
)
def test_layer_outputs_and_gradients_equal_jax_grad_of_a_scan(token_inputs, reverse, activation):
    params, inputs, _, h0 = make_problem(np.float32, token_inputs)
    rng = np.random.default_rng(1)
    d_hidden = jnp.asarray(rng.standard_normal((T, B, H)).astype(np.float32))
    d_h_last = jnp.asarray(rng.standard_normal((B, H)).astype(np.float32))
    argnums = (0, 2) if token_inputs else (0, 1, 2)

    def projected(layer):
        def scalar(params, inputs, h0):
            hidden, h_last = layer(params, inputs, h0)
            return (hidden * d_hidden).sum() + (h_last * d_h_last).sum(), (hidden, h_last)

        return jax.grad(scalar, argnums, has_aux=True)

    def ours(params, inputs, h0):
        return bptt.jax.rnn(params, inputs, h0=h0, activation=activation, reverse=reverse)

    def reference(params, inputs, h0):
        return scan_rnn(params, inputs, h0, activation, reverse)

    got = jax.jit(projected(ours))(params, inputs, h0)
    expected = projected(reference)(params, inputs, h0)
    assert_close(got, expected, np.float32)
    # The layer ignores the head's parameters: they get zero gradients.
    assert not got[0][0]["V"].any()
    assert not got[0][0]["c"].any()


def test_float64_under_jax_enable_x64():
    with jax.enable_x64(True):
        params, inputs, targets, h0 = make_problem(np.float64)
        got = jax.jit(jax.value_and_grad(bptt.jax.loss, (0, 1)))(params, inputs, targets, h0=h0)
        expected = jax.value_and_grad(scan_loss, (0, 1))(params, inputs, targets, h0, "tanh", "sum")
        assert_close(got, expected, np.float64)


def test_without_h0_the_initial_state_is_zeros():
    params, inputs, targets, h0 = make_problem(np.float32)
    assert_close(
        bptt.jax.loss(params, inputs, targets),
        bptt.jax.loss(params, inputs, targets, h0=0 * h0),
        np.float32,
    )
    assert_close(bptt.jax.rnn(params, inputs), bptt.jax.rnn(params, inputs, h0=0 * h0), np.float32)


def test_vmap_over_a_batch_of_problems_equals_one_call_each():
    params, inputs, targets, h0 = make_problem(np.float32)
    stacked = jnp.stack([inputs, 2 * inputs])
    mapped = jax.vmap(lambda x: bptt.jax.loss(params, x, targets, h0=h0))(stacked)
    each = [bptt.jax.loss(params, x, targets, h0=h0) for x in stacked]
    np.testing.assert_array_equal(mapped, each)


def test_params_without_the_layers_weights_are_refused():
    params, inputs, targets, _ = make_problem(np.float32)
    del params["W"]
    with pytest.raises(ValueError, match=r"^params: expected a mapping holding U, W and b"):
        bptt.jax.rnn(params, inputs)
    with pytest.raises(
        ValueError, match=r"^params: expected a dict with exactly the keys U, W, b, V, c"
    ):
        bptt.jax.loss(params, inputs, targets)


def test_inputs_without_a_batch_axis_are_refused():
    params, inputs, targets, _ = make_problem(np.float32)
    with pytest.raises(ValueError, match=r"^inputs: expected float \(T, B, D\) or token ids"):
        bptt.jax.rnn(params, inputs[:, 0])
    with pytest.raises(ValueError, match=r"^inputs: expected float \(T, B, D\) or token ids"):
        bptt.jax.loss(params, inputs[:, 0], targets[:, 0])


@pytest.mark.parametrize("token_inputs", [False, True], ids=["float-inputs", "token-ids"])
def test_a_memory_budget_gives_the_cores_value_and_gradients_bit_for_bit(token_inputs):
    # (T, B, D = O, H) long enough that the budget computes states again (T = 7 keeps them all)
    long_T, long_B, size, hidden = 400, 3, 8, 32
    rng = np.random.default_rng(4)
    params = bptt.init_params(size, hidden, size, seed=4)
    inputs = (
        rng.integers(0, size, (long_T, long_B))
        if token_inputs
        else rng.standard_normal((long_T, long_B, size)).astype(np.float32)
    )
    targets = rng.integers(-1, size, (long_T, long_B))
    h0 = rng.standard_normal((long_B, hidden)).astype(np.float32)
    sizes = (long_T, long_B, size, hidden, size)
    budget = 3 * bptt.memory_plan(*sizes, tokens=token_inputs).minimum_bytes
    plan = bptt.memory_plan(*sizes, tokens=token_inputs, memory_budget=budget)
    assert plan.schedule in ("segments", "binomial")
    core = bptt.loss_and_grad(params, inputs, targets, h0=h0)
    arrays = [jax.tree.map(jnp.asarray, array) for array in (params, inputs, targets, h0)]
    wrt = (0, 1, 3) if not token_inputs else (0, 3)

    def loss(params, inputs, targets, h0, memory_budget):
        return bptt.jax.loss(params, inputs, targets, h0=h0, memory_budget=memory_budget)

    for memory_budget in (None, budget):
        value_and_grad = jax.jit(jax.value_and_grad(loss, wrt), static_argnums=4)
        value, grads = value_and_grad(*arrays, memory_budget)
        assert np.float32(core.loss) == value
        for name in params:
            np.testing.assert_array_equal(grads[0][name], core.grads[name])
        np.testing.assert_array_equal(grads[-1], core.grads["h0"])
        if not token_inputs:
            np.testing.assert_array_equal(grads[1], core.grads["x"])
    # without a gradient, under a budget the loss is the core's loss_and_grad's too
    assert jax.jit(loss, static_argnums=4)(*arrays, budget) == np.float32(core.loss)
