"""bptt.jax.loss and bptt.jax.rnn refuse bad arguments when traced, eagerly and under jax.jit, with
a TypeError or ValueError naming the argument in the core's words, not with a JaxRuntimeError from
inside the host callback; ids out of range, seen only when the core runs, end the callback's error
with the core's message."""

import re

import numpy as np
import pytest

jax = pytest.importorskip("jax")

import jax.numpy as jnp

import bptt
import bptt.jax

T, B, D, H, O = 3, 2, 4, 5, 6


def valid(dtype=np.float32):
    rng = np.random.default_rng(0)
    return {
        "params": {
            name: jnp.asarray(value)
            for name, value in bptt.init_params(D, H, O, dtype=dtype, seed=0).items()
        },
        "inputs": jnp.asarray(rng.standard_normal((T, B, D)).astype(dtype)),
        "targets": jnp.asarray(rng.integers(0, O, (T, B))),
        "h0": jnp.asarray(rng.uniform(-1, 1, (B, H)).astype(dtype)),
    }


def params_with(name, value):
    return valid()["params"] | {name: value}


@pytest.fixture(params=[False, True], ids=["eager", "jit"])
def jit(request):
    return request.param


def call_loss(jit, options=None, **changes):
    """bptt.jax.loss on the valid problem with some arguments replaced; the arrays traced under
    jit, the options static."""
    args = {**valid(), **changes}

    def run(params, inputs, targets, h0):
        return bptt.jax.loss(params, inputs, targets, h0=h0, **(options or {}))

    run = jax.jit(run) if jit else run
    return jax.block_until_ready(run(args["params"], args["inputs"], args["targets"], args["h0"]))


def call_rnn(jit, options=None, **changes):
    args = {**valid(), **changes}

    def run(params, inputs, h0):
        return bptt.jax.rnn(params, inputs, h0=h0, **(options or {}))

    run = jax.jit(run) if jit else run
    return jax.block_until_ready(run(args["params"], args["inputs"], args["h0"]))


PARAMS = "params\\['{}'\\]"
# the valid problem's least memory budget: the core's need, and its int64 copy of the int32
# class ids (JAX's integers without jax_enable_x64)
MINIMUM_BUDGET = bptt.memory_plan(T, B, D, H, O).minimum_bytes + 8 * T * B

# (changes to the valid problem, options, the error, the start of its message)
LAYER_CASES = {
    "U-int32": (
        {"params": params_with("U", jnp.zeros((H, D), jnp.int32))},
        None,
        TypeError,
        PARAMS.format("U") + r": expected dtype float32 or float64, got int32",
    ),
    "U-bfloat16": (
        {"params": params_with("U", jnp.zeros((H, D), jnp.bfloat16))},
        None,
        TypeError,
        PARAMS.format("U") + r": expected dtype float32 or float64, got bfloat16",
    ),
    "U-1d": (
        {"params": params_with("U", jnp.zeros(H))},
        None,
        ValueError,
        PARAMS.format("U") + r": expected a 2-d array of shape \(H, D\)",
    ),
    "W-float16": (
        {"params": params_with("W", jnp.zeros((H, H), jnp.float16))},
        None,
        TypeError,
        PARAMS.format("W") + r": expected dtype float32 like params\['U'\], got float16",
    ),
    "W-shape": (
        {"params": params_with("W", jnp.zeros((H, H + 1)))},
        None,
        ValueError,
        PARAMS.format("W") + r": expected shape \(H, H\) = \(5, 5\), got \(5, 6\)",
    ),
    "b-shape": (
        {"params": params_with("b", jnp.zeros(H + 1))},
        None,
        ValueError,
        PARAMS.format("b") + r": expected shape \(H,\) = \(5,\), got \(6,\)",
    ),
    "inputs-float16": (
        {"inputs": jnp.zeros((T, B, D), jnp.float16)},
        None,
        TypeError,
        r"inputs: expected dtype float32 like the params \(or integer token ids\), got float16",
    ),
    "inputs-complex": (
        {"inputs": jnp.zeros((T, B, D), jnp.complex64)},
        None,
        TypeError,
        r"inputs: expected float32 vectors or integer token ids, got dtype complex64",
    ),
    "inputs-bool": (
        {"inputs": jnp.zeros((T, B), bool)},
        None,
        TypeError,
        r"inputs: expected float32 vectors or integer token ids, got dtype bool",
    ),
    "inputs-D": (
        {"inputs": jnp.zeros((T, B, D + 1))},
        None,
        ValueError,
        r"inputs: expected shape \(T, B, D\) with D = 4, got \(3, 2, 5\)",
    ),
    "inputs-list": (
        {"inputs": np.zeros((T, B, D)).tolist()},
        None,
        TypeError,
        r"inputs: expected an array, got list",
    ),
    "h0-batch": (
        {"h0": jnp.zeros((B + 1, H))},
        None,
        ValueError,
        r"h0: expected shape \(B, H\) = \(2, 5\), got \(3, 5\)",
    ),
    "h0-float16": (
        {"h0": jnp.zeros((B, H), jnp.float16)},
        None,
        TypeError,
        r"h0: expected dtype float32 like the params, got float16",
    ),
    "activation-unknown": (
        {},
        {"activation": "gelu"},
        ValueError,
        r"activation: expected 'tanh', 'sigmoid', 'relu' or 'identity', got 'gelu'",
    ),
    "activation-None": (
        {},
        {"activation": None},
        TypeError,
        r"activation: expected a string, got NoneType",
    ),
}

HEAD_CASES = {
    "V-shape": (
        {"params": params_with("V", jnp.zeros((O, H + 1)))},
        None,
        ValueError,
        PARAMS.format("V") + r": expected shape \(O, H\) = \(6, 5\), got \(6, 6\)",
    ),
    "V-float16": (
        {"params": params_with("V", jnp.zeros((O, H), jnp.float16))},
        None,
        TypeError,
        PARAMS.format("V") + r": expected dtype float32 like params\['U'\], got float16",
    ),
    "c-shape": (
        {"params": params_with("c", jnp.zeros(O + 1))},
        None,
        ValueError,
        PARAMS.format("c") + r": expected shape \(O,\) = \(6,\), got \(7,\)",
    ),
    "targets-T": (
        {"targets": jnp.zeros((T - 1, B), jnp.int32)},
        None,
        ValueError,
        r"targets: expected shape \(T, B\) = \(3, 2\), got \(2, 2\)",
    ),
    "targets-bool": (
        {"targets": jnp.zeros((T, B), bool)},
        None,
        TypeError,
        r"targets: expected integer class ids \(T, B\) or float soft targets .*, got dtype bool",
    ),
    "soft-targets-O": (
        {"targets": jnp.zeros((T, B, O + 1))},
        None,
        ValueError,
        r"targets: expected shape \(T, B, O\) = \(3, 2, 6\), got \(3, 2, 7\)",
    ),
    "soft-targets-float16": (
        {"targets": jnp.zeros((T, B, O), jnp.float16)},
        None,
        TypeError,
        r"targets: expected dtype float32 like the params \(or integer class ids\), got float16",
    ),
    "reduction-unknown": (
        {},
        {"reduction": "max"},
        ValueError,
        r"reduction: expected 'sum' or 'mean', got 'max'",
    ),
    "memory_budget-unit": (
        {},
        {"memory_budget": "12 parsecs"},
        ValueError,
        r"memory_budget: expected a size such as '512MiB'",
    ),
    "memory_budget-float": (
        {},
        {"memory_budget": 1.5},
        TypeError,
        r"memory_budget: expected None, an integer number of bytes",
    ),
    "memory_budget-small": (
        {},
        {"memory_budget": MINIMUM_BUDGET - 1},
        ValueError,
        rf"memory_budget: expected at least {MINIMUM_BUDGET} bytes .*, got {MINIMUM_BUDGET - 1}",
    ),
}


@pytest.mark.parametrize("case", [*LAYER_CASES, *HEAD_CASES])
def test_loss_refuses_bad_arguments_naming_them_when_traced(case, jit):
    changes, options, error, message = (LAYER_CASES | HEAD_CASES)[case]
    with pytest.raises(error, match=f"^{message}"):
        call_loss(jit, options, **changes)


@pytest.mark.parametrize("case", LAYER_CASES)
def test_rnn_refuses_bad_arguments_naming_them_when_traced(case, jit):
    changes, options, error, message = LAYER_CASES[case]
    with pytest.raises(error, match=f"^{message}"):
        call_rnn(jit, options, **changes)


def as_objects(array) -> np.ndarray:
    """A NumPy array of Python objects holding `array`'s values, which no JAX type holds."""
    return np.asarray(array).astype(object)


OBJECT_CASES = {  # the argument made of objects: (its message, whether rnn takes it too)
    "inputs": (r"inputs: expected float32 vectors or integer token ids, got dtype object", True),
    "h0": (r"h0: expected dtype float32 like the params, got object", True),
    "W": (PARAMS.format("W") + r": expected dtype float32 like params\['U'\], got object", True),
    "targets": (
        r"targets: expected integer class ids \(T, B\) or float soft .*, got dtype object",
        False,
    ),
}


@pytest.mark.parametrize("argument", OBJECT_CASES)
def test_arrays_of_python_objects_are_refused_naming_them_not_shown_whole(argument):
    # only eagerly: jax.jit refuses them as arguments before bptt.jax sees them
    message, rnn_takes_it = OBJECT_CASES[argument]
    problem = valid()
    if argument == "W":
        changes = {"params": params_with("W", as_objects(problem["params"]["W"]))}
    else:
        changes = {argument: as_objects(problem[argument])}
    with pytest.raises(TypeError, match=f"^{message}$"):
        call_loss(False, **changes)
    if rnn_takes_it:
        with pytest.raises(TypeError, match=f"^{message}$"):
            call_rnn(False, **changes)


def test_the_least_memory_budget_the_trace_accepts_is_the_cores(jit):
    assert call_loss(jit, {"memory_budget": MINIMUM_BUDGET}) == call_loss(jit)


def test_rnn_refuses_a_reverse_that_is_not_a_bool(jit):
    with pytest.raises(TypeError, match=r"^reverse: expected True or False, got 'yes'"):
        call_rnn(jit, {"reverse": "yes"})


def test_float64_params_with_float32_inputs_are_refused_naming_inputs(jit):
    with jax.enable_x64(True):
        problem = valid(np.float64)
        with pytest.raises(TypeError, match=r"^inputs: expected dtype float64 like the params"):
            call_loss(jit, params=problem["params"], h0=problem["h0"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"targets": jnp.full((T, B), O)}, "targets: id 6 at (t=0, b=0) is out of range"),
        ({"inputs": jnp.full((T, B), D)}, "inputs: id 4 at (t=0, b=0) is out of range"),
    ],
    ids=["targets", "inputs"],
)
def test_ids_out_of_range_end_the_run_time_error_with_the_cores_message(changes, message, jit):
    # Values are unknown when traced: the core's ValueError, raised in the host callback, reaches
    # the caller wrapped by JAX; its last line names the argument.
    with pytest.raises(jax.errors.JaxRuntimeError) as raised:
        call_loss(jit, **changes)
    assert re.search(f"^ValueError: {re.escape(message)}", str(raised.value), re.MULTILINE)


@pytest.mark.parametrize(
    ("argument", "wide_id", "wrapped_id"),
    [("inputs", 2**32 + 1, 1), ("targets", 2**32 - 1, -1)],  # -1: no loss at that step
)
def test_host_ids_that_jax_would_wrap_are_refused_not_computed_wrapped(
    argument, wide_id, wrapped_id
):
    if jax.config.jax_enable_x64:
        pytest.skip("JAX computes in int64: no id of an int64 array is wrapped")
    ids = {"inputs": np.zeros((T, B), np.int64), "targets": np.zeros((T, B), np.int64)}
    ids[argument][1, 0] = wide_id
    assert jnp.asarray(ids[argument])[1, 0] == wrapped_id  # what JAX alone would compute with
    message = rf"^{argument}: id {wide_id} at \(t=1, b=0\) is out of range: expected an id that JAX's int32"
    with pytest.raises(ValueError, match=message):
        bptt.jax.loss(valid()["params"], ids["inputs"], ids["targets"])
    if argument == "inputs":
        with pytest.raises(ValueError, match=message):
            bptt.jax.rnn(valid()["params"], ids["inputs"])


def test_rnn_refuses_hidden_states_beyond_the_memory_available_when_traced():
    # 2**20 steps of 2**12 sequences of 1024 float32 units: 17 TB, which JAX would otherwise
    # try to allocate, and, without jax.jit, wait for for ever where it cannot
    params = bptt.init_params(8, 1024, 8, seed=0)
    ids = jax.ShapeDtypeStruct((2**20, 2**12), jnp.int32)
    with pytest.raises(MemoryError, match=r"^rnn with hidden states \(1048576, 4096, 1024\) needs"):
        jax.eval_shape(lambda ids: bptt.jax.rnn(params, ids), ids)


@pytest.mark.parametrize("function", ["loss", "rnn"])
def test_second_derivatives_are_refused_as_such(function):
    arguments = valid()
    if function == "loss":

        def value(W):
            params = arguments["params"] | {"W": W}
            return bptt.jax.loss(params, arguments["inputs"], arguments["targets"])
    else:

        def value(W):
            return bptt.jax.rnn(arguments["params"] | {"W": W}, arguments["inputs"])[0].sum()

    W = arguments["params"]["W"]
    jax.grad(value)(W)  # first derivatives: computed
    with pytest.raises(ValueError, match=r"^bptt.jax computes first derivatives only"):
        jax.hessian(value)(W)
    with pytest.raises(ValueError, match=r"^bptt.jax computes first derivatives only"):
        jax.grad(lambda W: jax.grad(value)(W).sum())(W)


def soft_targets():
    logits = np.random.default_rng(1).standard_normal((T, B, O)).astype(np.float32)
    return jax.nn.softmax(jnp.asarray(logits), axis=-1)


def test_a_gradient_for_soft_targets_is_refused_not_given_as_zeros(jit):
    # The core computes no dL/dy; a zero in its place would be a wrong gradient.
    problem = valid()

    def loss_of_targets(targets):
        return bptt.jax.loss(problem["params"], problem["inputs"], targets)

    grad = jax.jit(jax.grad(loss_of_targets)) if jit else jax.grad(loss_of_targets)
    with pytest.raises(ValueError, match=r"^targets: soft targets get no gradient"):
        grad(soft_targets())


def test_soft_targets_computed_from_differentiated_values_are_refused_unless_stopped(jit):
    problem = valid()

    def loss(params, stop):
        targets = jax.nn.softmax(soft_targets() * params["c"], axis=-1)
        targets = jax.lax.stop_gradient(targets) if stop else targets
        return bptt.jax.loss(params, problem["inputs"], targets)

    def grad(stop):
        run = jax.grad(lambda params: loss(params, stop))
        return (jax.jit(run) if jit else run)(problem["params"])

    with pytest.raises(ValueError, match=r"^targets: soft targets get no gradient"):
        grad(stop=False)
    # Stopped, they are constants: the gradient of the loss for them as given (the targets'
    # softmax under jit may round otherwise than eagerly: float32 closeness, not bits).
    stopped = grad(stop=True)
    targets = jax.nn.softmax(soft_targets() * problem["params"]["c"], axis=-1)
    expected = jax.grad(lambda params: bptt.jax.loss(params, problem["inputs"], targets))(
        problem["params"]
    )
    np.testing.assert_allclose(stopped["W"], expected["W"], rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(stopped["W"])).max() > 1e-3
