"""`bptt train`'s step in one call of the core (`_core.TrainingStep`) is the step in parts (the
loss and gradients, clip_grad_norm, the optimizer's step) in one pass: the same parameters after
a run of steps, on one thread and two, with the clip active and not, for one layer and for a
stack (whose loss and gradients are bit for bit those of the layer ops composed,
`bptt.stack.loss_and_grad`); its bad arguments get errors naming them."""

import re

import numpy as np
import pytest

import bptt
from bptt import _api, _core, optimizers, stack
from bptt.trainer import Trainer
from bptt.training_config import TrainConfig

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
# The parts and the fused step sum the squares of the norm in other orders (a few ulps of
# float64 apart) and run the same operations otherwise: each update of parameters of size about
# 1 off by a few hundred ulps at most. Training amplifies such differences, the more the larger
# the model: at hidden size 100 and Adagrad's rate they double every few steps, and 45 steps
# take them from 1e-16 to 1e-3. So 45 steps (across an epoch's end: 38 steps an epoch at batch
# 3, seq-len 10) at hidden size 16, and 10 at hidden size 100 (over 8192 parameters, where two
# threads split the clip and the update).
RUNS = [(16, 45), (100, 10)]


def tolerance(steps):
    return steps * 1000 * np.finfo(np.float64).eps


def trained(tmp_path, optimizer, clip, hidden, steps, loss_and_grad=None, layers=1, **settings):
    """A run of `steps` steps, each one call of the core, or, given a loss_and_grad, in parts."""
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    config = TrainConfig(
        text=str(text_file),
        hidden=hidden,
        seq_len=10,
        batch=3,
        optimizer=optimizer,
        clip=clip,
        seed=5,
        layers=layers,
        **({"dtype": "float64"} | settings),
    )
    config.check()
    trainer = Trainer.start(config, loss_and_grad=loss_and_grad)
    losses = [trainer.step() for _ in range(steps)]
    return trainer, losses


@pytest.fixture(params=[1, 2], ids=["one thread", "two threads"])
def threads(request):
    saved = bptt.get_num_threads()
    bptt.set_num_threads(request.param)
    yield request.param
    bptt.set_num_threads(saved)


@pytest.mark.parametrize("optimizer", list(optimizers.OPTIMIZERS))
@pytest.mark.parametrize("clip", [0.25, 1e6], ids=["clipped", "unclipped"])
@pytest.mark.parametrize(("hidden", "steps"), RUNS, ids=["hidden 16", "hidden 100"])
def test_the_fused_step_trains_as_the_step_in_parts(
    tmp_path, threads, optimizer, clip, hidden, steps
):
    assert_same_training(tmp_path, optimizer, clip, hidden, steps, _api.loss_and_grad, layers=1)


@pytest.mark.parametrize("optimizer", list(optimizers.OPTIMIZERS))
@pytest.mark.parametrize("clip", [0.25, 1e6], ids=["clipped", "unclipped"])
@pytest.mark.parametrize("layers", [2, 3])
def test_the_fused_step_of_a_stack_trains_as_the_stack_in_parts(
    tmp_path, threads, optimizer, clip, layers
):
    hidden, steps = RUNS[0]
    assert_same_training(tmp_path, optimizer, clip, hidden, steps, stack.loss_and_grad, layers)


@pytest.mark.parametrize("layers", [1, 2])
def test_bfloat16_products_train_the_same_in_one_call_and_in_parts(tmp_path, threads, layers):
    # unclipped, the two ways differ only in the norm they report: the same bits throughout
    settings = {"dtype": "float32", "compute_dtype": "bfloat16"}
    parts_loss = _api.loss_and_grad if layers == 1 else stack.loss_and_grad
    fused, fused_losses = trained(tmp_path, "adam", 1e6, 16, 20, layers=layers, **settings)
    parts, parts_losses = trained(
        tmp_path, "adam", 1e6, 16, 20, parts_loss, layers=layers, **settings
    )
    assert fused_losses == parts_losses
    np.testing.assert_array_equal(fused.params.vector, parts.params.vector)
    np.testing.assert_array_equal(fused.hidden, parts.hidden)


def assert_same_training(tmp_path, optimizer, clip, hidden, steps, loss_and_grad, layers):
    fused, fused_losses = trained(tmp_path, optimizer, clip, hidden, steps, layers=layers)
    parts, parts_losses = trained(
        tmp_path, optimizer, clip, hidden, steps, loss_and_grad, layers=layers
    )
    assert fused._fused_step is not None
    assert parts._fused_step is None
    atol = tolerance(steps)
    np.testing.assert_allclose(fused_losses, parts_losses, rtol=atol)
    for name, value in parts.params.items():
        np.testing.assert_allclose(fused.params[name], value, rtol=0, atol=atol, err_msg=name)
    for name, value in parts.optimizer.state_arrays().items():
        np.testing.assert_allclose(
            fused.optimizer.state_arrays()[name], value, rtol=0, atol=atol, err_msg=name
        )
    np.testing.assert_allclose(fused.hidden, parts.hidden, rtol=0, atol=atol)
    assert fused.optimizer.step_count == parts.optimizer.step_count == steps


@pytest.mark.parametrize(
    ("dtype", "compute_dtype"),
    [(np.float32, None), (np.float64, None), (np.float32, "bfloat16")],
    ids=["float32", "float64", "bfloat16 products"],
)
@pytest.mark.parametrize("layers", [2, 3])
# a layer's states 3200 bytes, and 840, no multiple of the scratch's 64-byte alignment
@pytest.mark.parametrize(("B", "H"), [(4, 20), (3, 7)], ids=["states aligned", "unaligned"])
def test_a_stacks_step_takes_the_loss_and_gradients_of_the_layer_ops_composed(
    threads, layers, dtype, compute_dtype, B, H
):
    T, D = 9, 6
    bptt.release_scratch()  # the step's own scratch, not a larger one an earlier call left
    rng = np.random.default_rng(layers)
    params = stack.init_params(D, H, D, layers, dtype=dtype, seed=3)
    vector = np.concatenate([value.ravel() for value in params.values()])
    inputs, targets = rng.integers(0, D, (T, B)), rng.integers(0, D, (T, B))
    h0 = rng.uniform(-0.5, 0.5, (layers, B, H)).astype(dtype)
    out = {name: np.empty_like(value) for name, value in params.items()}
    composed = stack.loss_and_grad(
        params, inputs, targets, h0=h0, out=out, compute_dtype=compute_dtype
    )

    grad, h_last = np.empty_like(vector), np.empty_like(h0)
    # rate 0 and no clip: the gradients are left as the loss gave them, the params unchanged
    step = _core.TrainingStep(
        vector,
        grad,
        (np.zeros_like(vector),),
        input_size=D,
        hidden_size=H,
        output_size=D,
        activation="tanh",
        max_norm=1e30,
        optimizer="sgd",
        lr=0.0,
        layers=layers,
        compute_dtype=compute_dtype,
    )
    loss, norm, updated = step(inputs, targets, h0, h_last, 1)
    assert updated
    assert loss == composed.loss
    np.testing.assert_array_equal(grad, np.concatenate([out[name].ravel() for name in params]))
    np.testing.assert_array_equal(h_last, composed.h_last)
    assert norm == pytest.approx(np.sqrt(np.dot(grad.astype(np.float64), grad)), rel=1e-12)


# -- bad arguments -------------------------------------------------------------------------------

H, D = 4, 3
SIZE = H * D + H * H + H + D * H + D


def make_step(**changes):
    arguments = {
        "param": np.zeros(SIZE),
        "grad": np.zeros(SIZE),
        "states": (np.zeros(SIZE),),
        "input_size": D,
        "hidden_size": H,
        "output_size": D,
        "activation": "tanh",
        "max_norm": 5.0,
        "optimizer": "adagrad",
        "lr": 0.1,
        "eps": 1e-10,
    }
    arguments.update(changes)
    return _core.TrainingStep(**arguments)


@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        (
            {
                "param": np.zeros(SIZE + 1),
                "grad": np.zeros(SIZE + 1),
                "states": (np.zeros(SIZE + 1),),
            },
            ValueError,
            f"param: expected H·D + H·H + H + O·H + O = {SIZE} values for D = 3, H = 4, O = 3",
        ),
        ({"grad": np.zeros(SIZE, np.float32)}, TypeError, "grad: expected dtype float64"),
        ({"states": ()}, ValueError, "states: expected 1 vector(s) for adagrad, got 0"),
        ({"optimizer": "rmsprop"}, ValueError, "optimizer: expected 'adam', 'adagrad' or 'sgd'"),
        ({"activation": "gelu"}, ValueError, "activation: expected 'tanh'"),
        ({"hidden_size": 0}, ValueError, "hidden_size: expected >= 1, got 0"),
        ({"max_norm": float("nan")}, ValueError, "max_norm: expected a finite number"),
        ({"param": np.zeros(SIZE)[::-1]}, ValueError, "param: expected a contiguous vector"),
    ],
)
def test_a_bad_vector_or_setting_is_named(changes, error, message):
    with pytest.raises(error, match=re.escape(message)):
        make_step(**changes)


STACK_SIZE = SIZE + 2 * H * H + H  # a second layer: U2 (H, H), W2 (H, H), b2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"layers": 0}, "layers: expected >= 1, got 0"),
        (
            {"layers": 2},
            (
                "param: expected H·D + H·H + H + (layers - 1)·(2·H·H + H) + O·H + O = "
                f"{STACK_SIZE} values for D = 3, H = 4, O = 3, layers = 2, got {SIZE}"
            ),
        ),
        (
            {
                "layers": 2,
                "memory_budget": 1 << 20,
                "param": np.zeros(STACK_SIZE),
                "grad": np.zeros(STACK_SIZE),
                "states": (np.zeros(STACK_SIZE),),
            },
            "memory_budget: a budget bounds a one-layer step only (layers 1), got layers 2",
        ),
    ],
    ids=["no layers", "size of a stack", "budget of a stack"],
)
def test_a_bad_stack_is_named(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_step(**changes)


def test_a_stacks_state_has_a_row_of_states_per_layer():
    vectors = {name: np.zeros(STACK_SIZE) for name in ("param", "grad")}
    step = make_step(**vectors, states=(np.zeros(STACK_SIZE),), layers=2)
    with pytest.raises(ValueError, match="h0: "):
        step(*chunk(), np.zeros((2, H)), np.zeros((2, 2, H)), 1)
    with pytest.raises(ValueError, match="h_last: "):
        step(*chunk(), np.zeros((2, 2, H)), np.zeros((2, H)), 1)
    loss, _, updated = step(*chunk(), np.zeros((2, 2, H)), np.zeros((2, 2, H)), 1)
    assert updated
    assert loss == pytest.approx(np.log(D))  # every weight zero: uniform predictions


def test_vectors_that_share_memory_are_refused():
    shared = np.zeros(SIZE)
    with pytest.raises(ValueError, match="grad: expected a vector of its own"):
        make_step(param=shared, grad=shared)


def chunk(T=2, B=2):
    return np.zeros((T, B), np.int64), np.zeros((T, B), np.int64)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda s, h: s(np.full((2, 2), D), chunk()[1], h[0], h[1], 1), ValueError, "inputs: "),
        (
            lambda s, h: s(chunk()[0], np.zeros((3, 2), np.int64), h[0], h[1], 1),
            ValueError,
            "targets: ",
        ),
        (lambda s, h: s(*chunk(), np.zeros((2, H + 1)), h[1], 1), ValueError, "h0: "),
        (
            lambda s, h: s(*chunk(), h[0], h[0], 1),
            ValueError,
            "h_last: expected an array of its own, got one sharing memory with h0",
        ),
        (
            lambda s, h: s(*chunk(), h[0], h[1].astype(np.float32), 1),
            TypeError,
            "h_last: expected dtype float64",
        ),
        (
            lambda s, h: s(*chunk(), h[0], h[1][:, ::-1], 1),
            ValueError,
            "h_last: expected a writable, C-contiguous array",
        ),
        (lambda s, h: s(*chunk(), h[0], h[1], 0), ValueError, "step: expected >= 1, got 0"),
    ],
    ids=[
        "input id",
        "targets shape",
        "h0 shape",
        "h_last is h0",
        "h_last dtype",
        "h_last layout",
        "step",
    ],
)
def test_a_bad_chunk_or_state_is_named_and_nothing_changes(call, error, message):
    params = np.linspace(-1, 1, SIZE)
    step = make_step(param=params)
    states = (np.zeros((2, H)), np.zeros((2, H)))
    with pytest.raises(error, match=message):
        call(step, states)
    np.testing.assert_array_equal(params, np.linspace(-1, 1, SIZE))


def test_a_non_finite_loss_updates_nothing():
    params = np.linspace(-1, 1, SIZE)
    params[H * D + 1] = np.nan
    before = params.copy()
    state = np.zeros(SIZE)
    step = make_step(param=params, states=(state,))
    loss, norm, updated = step(*chunk(), np.zeros((2, H)), np.zeros((2, H)), 1)
    assert not updated
    assert np.isnan(loss)
    assert np.isnan(norm)
    np.testing.assert_array_equal(params, before)
    assert not state.any()
