"""Every bad argument is a ValueError or TypeError (or a MemoryError) whose message names the
argument, and never a crash: for the public functions and for the private core pieces."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import bptt
from bptt import _core, _model

T, B, D, H, O = 3, 2, 4, 5, 6
PARAM_NAMES = _model.PARAM_NAMES
PARAM_SHAPES = _model.parameter_shapes(D, H, O)


def valid(dtype=np.float32):
    """A valid problem: params, float inputs, integer targets, h0, all of `dtype`."""
    rng = np.random.default_rng(0)
    return {
        "params": bptt.init_params(D, H, O, dtype=dtype, seed=0),
        "inputs": rng.standard_normal((T, B, D)).astype(dtype),
        "targets": rng.integers(0, O, (T, B)),
        "h0": rng.uniform(-1, 1, (B, H)).astype(dtype),
    }


def call(dtype=np.float32, options=None, **changes):
    """loss_and_grad on the valid problem with some of its arguments replaced."""
    args = {**valid(dtype), **changes}
    return bptt.loss_and_grad(
        args["params"], args["inputs"], args["targets"], h0=args["h0"], **(options or {})
    )


def call_forward(dtype=np.float32, options=None, **changes):
    args = {**valid(dtype), **changes}
    return bptt.forward(args["params"], args["inputs"], h0=args["h0"], **(options or {}))


def params_with(name, value, dtype=np.float32):
    params = dict(valid(dtype)["params"])
    params[name] = value
    return params


def with_nan(array, value=np.nan):
    array = array.copy()
    array.flat[array.size // 2] = value
    return array


def quoted(name):
    """The regular expression for params['name']."""
    return rf"params\['{name}'\]"


# ---------------------------------------------------------------------------------------------
# params: the mapping itself.


@pytest.mark.parametrize("params", [None, [1, 2], (np.zeros(2),) * 5, "UWbVc"])
def test_params_that_are_not_a_mapping_are_a_type_error(params):
    with pytest.raises(TypeError, match="params"):
        call(params=params)
    with pytest.raises(TypeError, match="params"):
        call_forward(params=params)


@pytest.mark.parametrize("name", PARAM_NAMES)
def test_params_missing_a_key_are_a_value_error_naming_the_key(name):
    params = {k: v for k, v in valid()["params"].items() if k != name}

    with pytest.raises(ValueError, match=rf"params.*missing {name}"):
        call(params=params)
    with pytest.raises(ValueError, match=rf"params.*missing {name}"):
        call_forward(params=params)


def test_params_with_an_extra_key_are_a_value_error_naming_the_key():
    params = {**valid()["params"], "Z": np.zeros((H, H), np.float32)}

    with pytest.raises(ValueError, match=r"params.*unexpected 'Z'"):
        call(params=params)


# ---------------------------------------------------------------------------------------------
# params: shapes and dtypes.


@pytest.mark.parametrize(
    ("name", "shape"),
    [("W", (H, H + 1)), ("W", (H + 1, H + 1)), ("b", (H + 1,)), ("V", (O, H + 1)), ("c", (O + 1,))],
)
def test_param_of_the_wrong_shape_is_a_value_error_naming_it(name, shape):
    params = params_with(name, np.zeros(shape, np.float32))

    with pytest.raises(ValueError, match=quoted(name)):
        call(params=params)


def test_U_with_another_hidden_size_than_W_is_a_value_error_naming_one_of_them():
    # U defines H and D, so its disagreement with W may be reported on either side
    params = params_with("U", np.zeros((H + 1, D), np.float32))

    with pytest.raises(ValueError, match=r"params\['[UW]'\]"):
        call(params=params)


@pytest.mark.parametrize("name", PARAM_NAMES)
def test_param_with_an_extra_axis_is_a_value_error_naming_it(name):
    params = params_with(name, np.zeros((1, *PARAM_SHAPES[name]), np.float32))

    with pytest.raises(ValueError, match=quoted(name)):
        call(params=params)
    with pytest.raises(ValueError, match=quoted(name)):
        call_forward(params=params)


@pytest.mark.parametrize("name", ["U", "V"])
def test_matrix_param_given_as_a_vector_is_a_value_error_naming_it(name):
    params = params_with(name, np.zeros(PARAM_SHAPES[name][0], np.float32))

    with pytest.raises(ValueError, match=quoted(name)):
        call(params=params)


@pytest.mark.parametrize("bad_dtype", [np.int64, np.float16, np.complex64])
@pytest.mark.parametrize("name", PARAM_NAMES)
def test_param_of_a_non_float32_or_float64_dtype_is_a_type_error_naming_it(name, bad_dtype):
    params = params_with(name, np.zeros(PARAM_SHAPES[name], bad_dtype))

    with pytest.raises(TypeError, match=quoted(name)):
        call(params=params)


@pytest.mark.parametrize("name", ["W", "b", "V", "c"])
def test_param_of_float64_among_float32_params_is_a_type_error_naming_it(name):
    params = params_with(name, np.zeros(PARAM_SHAPES[name], np.float64))

    with pytest.raises(TypeError, match=rf"{quoted(name)}.*float32.*float64"):
        call(params=params)


def test_U_of_float64_among_float32_params_is_a_type_error_naming_a_param():
    # U sets the dtype, so the first param unlike it is the one named
    params = params_with("U", np.zeros((H, D), np.float64))

    with pytest.raises(TypeError, match=r"params\['W'\].*float64.*float32"):
        call(params=params)


# ---------------------------------------------------------------------------------------------
# inputs.


@pytest.mark.parametrize(
    ("param_dtype", "input_dtype"), [(np.float32, np.float64), (np.float64, np.float32)]
)
def test_float_inputs_of_another_float_dtype_than_the_params_are_a_type_error(
    param_dtype, input_dtype
):
    inputs = np.zeros((T, B, D), input_dtype)

    with pytest.raises(TypeError, match=r"inputs.*float"):
        call(param_dtype, inputs=inputs)
    with pytest.raises(TypeError, match=r"inputs.*float"):
        call_forward(param_dtype, inputs=inputs)


@pytest.mark.parametrize(
    "inputs",
    [
        np.zeros((T, B, D), bool),
        np.zeros((T, B), bool),
        np.zeros((T, B, D), np.complex64),
        np.full((T, B), "a"),
        np.array([[None] * B] * T, dtype=object),
    ],
    ids=["bool", "bool-ids", "complex", "str", "object"],
)
def test_inputs_that_are_neither_float_nor_integer_are_a_type_error(inputs):
    with pytest.raises(TypeError, match="inputs"):
        call(inputs=inputs)


def test_float_inputs_with_the_wrong_input_size_are_a_value_error_naming_inputs():
    with pytest.raises(ValueError, match="inputs"):
        call(inputs=np.zeros((T, B, D + 1), np.float32))


def test_float_inputs_with_the_wrong_input_size_say_which_size_was_expected_and_whence():
    # either inputs or U may be the one in error: the message names both
    expected = rf"^inputs: expected shape \(T, B, D\) with D = {D} \(params\['U'\] is \(H, D\) = \({H}, {D}\)\)"
    with pytest.raises(ValueError, match=expected):
        call(inputs=np.zeros((T, B, D + 1), np.float32))


@pytest.mark.parametrize("inputs", [np.zeros((T, B), bool), np.zeros((T, B, D), np.complex64)])
def test_inputs_neither_float_nor_ids_are_refused_naming_the_params_dtype(inputs):
    with pytest.raises(TypeError, match=r"^inputs: expected float32 vectors or integer token ids"):
        call(inputs=inputs)


@pytest.mark.parametrize(
    "inputs",
    [
        np.zeros((T, B, D, 1), np.float32),
        np.zeros((T,), np.float32),
        np.zeros((), np.float32),
        np.zeros((T, B, 1), np.int64),
        np.zeros((T, B, D, 1), np.int64),
    ],
    ids=["float-4d", "float-1d", "float-0d", "ids-3d", "ids-4d"],
)
def test_inputs_with_the_wrong_number_of_axes_are_a_value_error(inputs):
    with pytest.raises(ValueError, match="inputs"):
        call(inputs=inputs)
    with pytest.raises(ValueError, match="inputs"):
        call_forward(inputs=inputs)


@pytest.mark.parametrize("bad_id", [D, -1, 2**40])
def test_token_id_outside_zero_to_d_is_a_value_error_naming_inputs(bad_id):
    inputs = np.zeros((T, B), np.int64)
    inputs[1, 1] = bad_id

    with pytest.raises(ValueError, match=rf"inputs.*{bad_id}.*out of range"):
        call(inputs=inputs)
    with pytest.raises(ValueError, match=rf"inputs.*{bad_id}.*out of range"):
        call_forward(inputs=inputs)


@pytest.mark.parametrize("bad_id", [2**63 + 5, 2**64 - 1])
def test_unsigned_token_ids_too_large_for_int64_are_a_value_error_naming_inputs(bad_id):
    inputs = np.zeros((T, B), np.uint64)
    inputs[1, 1] = bad_id

    with pytest.raises(ValueError, match=rf"inputs: id {bad_id} at index \(1, 1\).*out of range"):
        call(inputs=inputs)


def test_the_unsigned_target_id_2_to_the_64_minus_1_is_out_of_range_not_the_ignored_id_minus_1():
    # Cast to int64, it would wrap around to -1, which means "no loss at this step".
    targets = np.zeros((T, B), np.uint64)
    targets[2, 0] = 2**64 - 1

    with pytest.raises(ValueError, match=r"targets: id 18446744073709551615 .*out of range"):
        call(targets=targets)


# ---------------------------------------------------------------------------------------------
# targets.


@pytest.mark.parametrize(
    "shape", [(T + 1, B), (T, B + 1), (T,), (T, B, 1), ()], ids=["T", "B", "1d", "3d", "0d"]
)
def test_integer_targets_of_the_wrong_shape_are_a_value_error_naming_targets(shape):
    with pytest.raises(ValueError, match="targets"):
        call(targets=np.zeros(shape, np.int64))


@pytest.mark.parametrize("bad_id", [O, -2, O + 100])
def test_target_id_outside_minus_one_to_o_is_a_value_error_naming_targets(bad_id):
    targets = np.zeros((T, B), np.int64)
    targets[2, 0] = bad_id

    with pytest.raises(ValueError, match=rf"targets.*{bad_id}.*out of range"):
        call(targets=targets)


@pytest.mark.parametrize(
    "shape",
    [(T, B, O + 1), (T + 1, B, O), (T, B + 1, O), (T, B, O, 1)],
    ids=["O", "T", "B", "4d"],
)
def test_soft_targets_of_the_wrong_shape_are_a_value_error_naming_targets(shape):
    with pytest.raises(ValueError, match="targets"):
        call(targets=np.zeros(shape, np.float32))


@pytest.mark.parametrize("bad_dtype", [np.float64, np.float16, bool, np.complex64])
def test_soft_targets_of_another_dtype_than_the_params_are_a_type_error(bad_dtype):
    with pytest.raises(TypeError, match="targets"):
        call(targets=np.zeros((T, B, O), bad_dtype))


def test_missing_targets_are_a_type_error_naming_targets():
    with pytest.raises(TypeError, match="targets"):
        call(targets=None)


# ---------------------------------------------------------------------------------------------
# h0.


@pytest.mark.parametrize(
    "shape", [(B, H + 1), (B + 1, H), (H,), (1, B, H)], ids=["H", "B", "1d", "3d"]
)
def test_h0_of_the_wrong_shape_is_a_value_error_naming_h0(shape):
    h0 = np.zeros(shape, np.float32)

    with pytest.raises(ValueError, match="h0"):
        call(h0=h0)
    with pytest.raises(ValueError, match="h0"):
        call_forward(h0=h0)


@pytest.mark.parametrize("bad_dtype", [np.float64, np.int64, np.float16])
def test_h0_of_another_dtype_than_the_params_is_a_type_error_naming_h0(bad_dtype):
    h0 = np.zeros((B, H), bad_dtype)

    with pytest.raises(TypeError, match="h0"):
        call(h0=h0)
    with pytest.raises(TypeError, match="h0"):
        call_forward(h0=h0)


def test_batched_h0_with_unbatched_inputs_is_a_value_error_naming_h0():
    with pytest.raises(ValueError, match="h0"):
        bptt.loss_and_grad(
            valid()["params"],
            np.zeros(T, np.int64),
            np.zeros(T, np.int64),
            h0=np.zeros((B, H), np.float32),
        )


def test_batched_targets_with_unbatched_inputs_are_a_value_error_naming_targets():
    with pytest.raises(ValueError, match="targets"):
        bptt.loss_and_grad(valid()["params"], np.zeros(T, np.int64), np.zeros((T, B), np.int64))


# ---------------------------------------------------------------------------------------------
# Non-finite values.


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", PARAM_NAMES)
def test_non_finite_param_is_a_value_error_naming_it(name, dtype, value):
    params = dict(valid(dtype)["params"])
    params[name] = with_nan(params[name], value)

    with pytest.raises(ValueError, match=rf"{quoted(name)}.*finite"):
        call(dtype, params=params)
    with pytest.raises(ValueError, match=rf"{quoted(name)}.*finite"):
        call_forward(dtype, params=params)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["inputs", "targets", "h0"])
def test_non_finite_array_argument_is_a_value_error_naming_it(name, dtype, value):
    args = valid(dtype)
    if name == "targets":
        args["targets"] = np.full((T, B, O), 1.0 / O, dtype)  # soft targets can hold a NaN
    args[name] = with_nan(args[name], value)

    with pytest.raises(ValueError, match=rf"{name}.*finite"):
        call(dtype, **args)
    if name != "targets":
        with pytest.raises(ValueError, match=rf"{name}.*finite"):
            call_forward(dtype, inputs=args["inputs"], h0=args["h0"])


def test_nan_in_inputs_without_the_finite_check_gives_a_nan_loss_and_no_error():
    inputs = with_nan(valid()["inputs"])

    result = call(inputs=inputs, options={"check_finite": False})
    out = call_forward(inputs=inputs, options={"check_finite": False})

    assert np.isnan(result.loss)
    assert np.isnan(out.hidden).any()


# ---------------------------------------------------------------------------------------------
# activation and reduction.


@pytest.mark.parametrize("activation", ["softplus", "Tanh", "", "tanh "])
def test_unknown_activation_is_a_value_error_naming_activation(activation):
    with pytest.raises(ValueError, match="activation"):
        call(options={"activation": activation})
    with pytest.raises(ValueError, match="activation"):
        call_forward(options={"activation": activation})


@pytest.mark.parametrize("reduction", ["max", "Mean", "", "none"])
def test_unknown_reduction_is_a_value_error_naming_reduction(reduction):
    with pytest.raises(ValueError, match="reduction"):
        call(options={"reduction": reduction})


@pytest.mark.parametrize("value", [None, "yes", 1, 0.0], ids=repr)
@pytest.mark.parametrize("flag", ["check_finite", "input_grad"])
def test_a_flag_that_is_not_a_bool_is_a_type_error_naming_it(flag, value):
    # None or 0 must not pass for False, nor "yes" for True.
    with pytest.raises(TypeError, match=rf"^{flag}: expected True or False"):
        call(options={flag: value})
    if flag == "check_finite":
        with pytest.raises(TypeError, match=rf"^{flag}: expected True or False"):
            call_forward(options={flag: value})


def test_ragged_nested_lists_as_inputs_are_a_value_error_naming_inputs():
    ragged = [[[0.0] * D] * B, [[0.0] * D] * (B + 1)]

    with pytest.raises(ValueError, match=r"^inputs: expected an array"):
        call(inputs=ragged)
    with pytest.raises(ValueError, match=r"^inputs: expected an array"):
        call_forward(inputs=ragged)


RAGGED = [[0.0], [1.0, 2.0]]


def calls_with_a_ragged(argument, batched):
    """The calls that take `argument`, given RAGGED for it, on a batch or (unbatched) on its
    first sequence."""
    problem = valid()
    one = (lambda array: array) if batched else (lambda array: array[:, 0])
    params = problem["params"] | ({"V": RAGGED} if argument == "params['V']" else {})
    inputs, states = one(problem["inputs"]), one(np.zeros((T, B, H), np.float32))
    targets = RAGGED if argument == "targets" else one(problem["targets"])
    h0 = RAGGED if argument == "h0" else problem["h0"][0 if not batched else slice(None)]
    return {
        "targets": [
            lambda: bptt.loss_and_grad(params, inputs, targets, h0=h0),
            lambda: bptt.head_loss_and_grad(params, states, targets),
        ],
        "h0": [
            lambda: bptt.loss_and_grad(params, inputs, targets, h0=h0),
            lambda: bptt.forward(params, inputs, h0=h0),
            lambda: bptt.layer_forward(params, inputs, h0=h0),
        ],
        "params['V']": [
            lambda: bptt.loss_and_grad(params, inputs, targets),
            lambda: bptt.forward(params, inputs),
        ],
        "hidden": [lambda: bptt.layer_backward(params, inputs, RAGGED)],
        "d_h_last": [lambda: bptt.layer_backward(params, inputs, states, d_h_last=RAGGED)],
    }[argument]


@pytest.mark.parametrize("argument", ["targets", "h0", "params['V']", "hidden", "d_h_last"])
@pytest.mark.parametrize("batched", [True, False], ids=["batched", "unbatched"])
def test_ragged_nested_lists_as_other_arguments_are_a_value_error_naming_them(argument, batched):
    for ragged_call in calls_with_a_ragged(argument, batched):
        with pytest.raises(
            ValueError, match=rf"^{re.escape(argument)}: expected an array, got list: "
        ):
            ragged_call()


class RaisesWhenConverted:
    """An array-like whose conversion fails for reasons of its own, not the argument's shape."""

    def __init__(self, error):
        self.error = error

    def __array__(self, dtype=None, copy=None):
        raise self.error


@pytest.mark.parametrize("error", [MemoryError("80 GiB"), KeyboardInterrupt()], ids=repr)
@pytest.mark.parametrize("argument", ["targets", "h0", "W", "lengths"])
def test_an_argument_whose_conversion_fails_otherwise_raises_that_error_as_it_is(argument, error):
    value = RaisesWhenConverted(error)
    problem = valid()
    calls = {
        "targets": lambda: call(targets=value),
        "h0": lambda: call(h0=value),
        "W": lambda: call(params=params_with("W", value)),
        "lengths": lambda: bptt.layer_forward(problem["params"], problem["inputs"], lengths=value),
    }
    with pytest.raises(type(error)):
        calls[argument]()


# ---------------------------------------------------------------------------------------------
# set_num_threads and init_params.


@pytest.mark.parametrize(
    ("n", "error"),
    [
        (0, ValueError),
        (-1, ValueError),
        (1025, ValueError),
        (100_000, ValueError),
        (3_000_000_000, ValueError),
        ("2", TypeError),
        (1.5, TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
    ids=repr,
)
def test_set_num_threads_refuses_anything_but_an_integer_from_1_to_1024(n, error):
    original = bptt.get_num_threads()
    try:
        with pytest.raises(error, match=r"^n: expected an integer in \[1, 1024\]"):
            bptt.set_num_threads(n)
        assert bptt.get_num_threads() == original
    finally:
        bptt.set_num_threads(original)


@pytest.mark.parametrize(
    ("sizes", "name", "error"),
    [
        ((0, H, O), "input_size", ValueError),
        ((D, 0, O), "hidden_size", ValueError),
        ((D, H, 0), "output_size", ValueError),
        ((-1, H, O), "input_size", ValueError),
        ((D, -3, O), "hidden_size", ValueError),
        ((D, H, 2.0), "output_size", TypeError),
        ((True, H, O), "input_size", TypeError),
        (("3", H, O), "input_size", TypeError),
    ],
)
def test_init_params_refuses_a_size_below_one_or_not_an_integer(sizes, name, error):
    with pytest.raises(error, match=rf"^{name}: expected an integer >= 1"):
        bptt.init_params(*sizes)


@pytest.mark.parametrize(
    ("seed", "error"), [(-1, ValueError), (1.5, TypeError), ("0", TypeError)], ids=repr
)
def test_init_params_refuses_a_seed_that_is_not_a_non_negative_integer(seed, error):
    with pytest.raises(error, match=r"^seed: "):
        bptt.init_params(D, H, O, seed=seed)


def test_init_params_with_more_parameters_than_the_memory_is_a_memory_error_at_once():
    # 2**35 hidden units: W alone would hold 2**70 numbers; refused before any is drawn.
    with pytest.raises(MemoryError, match=r"init_params.*GB"):
        bptt.init_params(D, 2**35, O)


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.complex128, np.longdouble, None])
def test_init_params_with_a_dtype_other_than_float32_or_float64_is_a_type_error(dtype):
    if dtype is np.longdouble and np.dtype(dtype) == np.float64:
        pytest.skip("long double is double on this platform")
    with pytest.raises(TypeError, match="dtype"):
        bptt.init_params(D, H, O, dtype=dtype)


# ---------------------------------------------------------------------------------------------
# Allocations larger than the machine.


def physical_memory_bytes():
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def too_large_problem():
    """One step of a wide batch over O = 65536 classes, H = 1: small inputs (about 2% of the
    machine's memory) whose logits alone need four times its memory."""
    classes = 2**16
    batch = int(np.ceil(4 * physical_memory_bytes() / (classes * 4)))
    params = bptt.init_params(1, 1, classes, seed=0)
    ids = np.zeros((1, batch), np.int64)
    return params, ids


def test_loss_and_grad_needing_more_memory_than_the_machine_is_a_memory_error():
    params, ids = too_large_problem()

    with pytest.raises(MemoryError, match="GB"):
        bptt.loss_and_grad(params, ids, ids)


def test_forward_needing_more_memory_than_the_machine_is_a_memory_error():
    params, ids = too_large_problem()

    with pytest.raises(MemoryError, match="GB"):
        bptt.forward(params, ids)


@pytest.mark.parametrize("function", ["layer_forward", "layer_backward"])
def test_the_layer_with_a_batch_larger_than_the_memory_is_a_memory_error_naming_the_call(
    function,
):
    # No steps: only the states before them (layer_forward) or dh0 (layer_backward) are large,
    # and the check counts them too.
    params = bptt.init_params(5, 6, 7, seed=0)
    batch = 2**40
    ids = np.zeros((0, batch), np.int64)
    hidden = np.zeros((0, batch, 6), np.float32)
    args = (params, ids) if function == "layer_forward" else (params, ids, hidden)
    with pytest.raises(MemoryError, match=rf"^{function} needs .* GB, more than the"):
        getattr(bptt, function)(*args)


def test_core_head_needing_more_memory_than_the_machine_is_a_memory_error():
    params, ids = too_large_problem()
    hidden = np.zeros((*ids.shape, 1), np.float32)

    with pytest.raises(MemoryError):
        _core.head_logits(params["V"], params["c"], hidden)
    with pytest.raises(MemoryError):
        _core.head_loss_and_grad(params["V"], params["c"], hidden, ids)


# Broadcast views cost no memory, but the core needs contiguous int64 ids; 10^15 elements are
# more than any address space holds, so the conversion must fail whatever the overcommit policy.
# Run in a child process, so that a crash fails this test rather than ending the session.
HUGE_VIEW_CASES = {
    "int64-token-inputs": "bptt.loss_and_grad(params, huge(np.int64), small)",
    "int32-token-inputs": "bptt.loss_and_grad(params, huge(np.int32), small)",
    "int32-token-inputs-forward": "bptt.forward(params, huge(np.int32))",
    "int32-target-ids": "bptt.loss_and_grad(params, small, huge(np.int32))",
    "float32-inputs": "bptt.loss_and_grad(params, huge(np.float32)[..., None], small)",
}


@pytest.mark.parametrize("case", HUGE_VIEW_CASES)
def test_broadcast_views_too_large_to_convert_are_an_error_and_not_a_crash(case):
    code = textwrap.dedent(
        f"""
        import numpy as np
        import bptt
        params = bptt.init_params(1, 4, 3, seed=0)
        small = np.zeros((2, 3), np.int64)
        def huge(dtype):
            return np.broadcast_to(dtype(0), (10**8, 10**7))
        try:
            {HUGE_VIEW_CASES[case]}
        except (MemoryError, ValueError) as error:
            print(type(error).__name__)
        """
    )
    child = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )

    assert child.returncode == 0, f"exit status {child.returncode}: {child.stderr[-2000:]}"
    assert child.stdout.strip() in ("MemoryError", "ValueError")


# ---------------------------------------------------------------------------------------------
# The private core pieces: bad shapes raise, they never crash.


def layer_args(dtype=np.float32):
    args = valid(dtype)
    U, W, b = (args["params"][k] for k in ("U", "W", "b"))
    hidden = _core.layer_forward(U, W, b, args["inputs"], args["h0"])[1:]
    return U, W, b, args["inputs"], hidden, args["h0"]


@pytest.mark.parametrize(
    "shape",
    [(T - 1, B, H), (T + 1, B, H), (T, B, H + 1), (T, B + 1, H), (B, H)],
    ids=["T-1", "T+1 (the states with h0)", "H", "B", "2d"],
)
def test_core_layer_backward_with_hidden_of_the_wrong_shape_is_a_value_error(shape):
    U, W, b, inputs, _, h0 = layer_args()

    with pytest.raises(ValueError, match="hidden"):
        _core.layer_backward(U, W, b, inputs, np.zeros(shape, np.float32), h0)


@pytest.mark.parametrize(
    "shape", [(T, B, H + 1), (T + 1, B, H), (T, B), (B, H)], ids=["H", "T", "2d", "d_h_last"]
)
def test_core_layer_backward_with_d_hidden_of_the_wrong_shape_is_a_value_error(shape):
    U, W, b, inputs, hidden, h0 = layer_args()

    with pytest.raises(ValueError, match="d_hidden"):
        _core.layer_backward(U, W, b, inputs, hidden, h0, d_hidden=np.zeros(shape, np.float32))


@pytest.mark.parametrize(
    "shape", [(B, H + 1), (B + 1, H), (H,), (T, B, H)], ids=["H", "B", "1d", "d_hidden"]
)
def test_core_layer_backward_with_d_h_last_of_the_wrong_shape_is_a_value_error(shape):
    U, W, b, inputs, hidden, h0 = layer_args()

    with pytest.raises(ValueError, match="d_h_last"):
        _core.layer_backward(U, W, b, inputs, hidden, h0, d_h_last=np.zeros(shape, np.float32))


@pytest.mark.parametrize("name", ["hidden", "d_hidden", "d_h_last"])
def test_core_layer_backward_with_an_array_of_another_dtype_is_a_type_error(name):
    U, W, b, inputs, hidden, h0 = layer_args()
    arrays = {"hidden": hidden, "d_hidden": np.zeros_like(hidden), "d_h_last": np.zeros_like(h0)}
    arrays[name] = arrays[name].astype(np.float64)

    with pytest.raises(TypeError, match=name):
        _core.layer_backward(U, W, b, inputs, h0=h0, **arrays)


@pytest.mark.parametrize("name", ["hidden", "d_hidden", "d_h_last"])
def test_core_layer_backward_with_a_non_finite_array_is_a_value_error_naming_it(name):
    U, W, b, inputs, hidden, h0 = layer_args()
    arrays = {"hidden": hidden, "d_hidden": np.zeros_like(hidden), "d_h_last": np.zeros_like(h0)}
    arrays[name] = with_nan(arrays[name])

    with pytest.raises(ValueError, match=rf"{name}.*finite"):
        _core.layer_backward(U, W, b, inputs, h0=h0, **arrays)


def test_core_layer_forward_with_inputs_of_the_wrong_size_is_a_value_error():
    U, W, b, _, _, h0 = layer_args()

    with pytest.raises(ValueError, match="inputs"):
        _core.layer_forward(U, W, b, np.zeros((T, B, D + 1), np.float32), h0)


@pytest.mark.parametrize(
    ("change", "name", "error"),
    [
        ({"hidden": np.zeros((T, B, H + 1), np.float32)}, "hidden", ValueError),
        ({"hidden": np.zeros((T, H), np.float32)}, "hidden", ValueError),
        ({"hidden": np.zeros((T, B, H), np.float64)}, "hidden", TypeError),
        ({"targets": np.zeros((T, B + 1), np.int64)}, "targets", ValueError),
        ({"targets": np.zeros((T, B, O + 1), np.float32)}, "targets", ValueError),
        ({"targets": np.full((T, B), O)}, "targets", ValueError),
        ({"c": np.zeros(O + 1, np.float32)}, r"params\['c'\]", ValueError),
        ({"V": np.zeros(O, np.float32)}, r"params\['V'\]", ValueError),
        ({"V": np.zeros((O, H), np.float64)}, r"params\['c'\]", TypeError),
        ({"V": np.zeros((O, H), np.int64)}, r"params\['V'\]", TypeError),
        ({"reduction": "max"}, "reduction", ValueError),
    ],
    ids=[
        "hidden-H",
        "hidden-2d",
        "hidden-dtype",
        "targets-B",
        "soft-targets-O",
        "target-id-O",
        "c-O",
        "V-1d",
        "V-float64-c-float32",
        "V-integer",
        "reduction",
    ],
)
def test_core_head_loss_and_grad_with_a_bad_argument_raises_naming_it(change, name, error):
    args = valid()
    _, _, _, _, hidden, _ = layer_args()
    call_args = {
        "V": args["params"]["V"],
        "c": args["params"]["c"],
        "hidden": hidden,
        "targets": args["targets"],
        "reduction": "sum",
        **change,
    }

    with pytest.raises(error, match=name):
        _core.head_loss_and_grad(**call_args)


@pytest.mark.parametrize(
    ("change", "name", "error"),
    [
        ({"hidden": np.zeros((T, B, H + 1), np.float32)}, "hidden", ValueError),
        ({"hidden": np.zeros((T, B, H), np.float64)}, "hidden", TypeError),
        ({"V": np.zeros((O, H), np.int64)}, r"params\['V'\]", TypeError),
    ],
    ids=["H", "dtype", "integer V"],
)
def test_core_head_logits_with_a_bad_argument_raises_naming_it(change, name, error):
    args = valid()
    _, _, _, _, hidden, _ = layer_args()
    call_args = {"V": args["params"]["V"], "c": args["params"]["c"], "hidden": hidden, **change}

    with pytest.raises(error, match=name):
        _core.head_logits(**call_args)


# ---------------------------------------------------------------------------------------------
# The layer and the head on their own: loss_and_grad's checks, each naming the argument.


def layer_and_head_calls(**options):
    """Each public layer and head function on the valid problem, by name, as a function of the
    params; each takes those of the options it has."""
    args = valid()
    inputs, targets, h0 = args["inputs"], args["targets"], args["h0"]
    hidden = bptt.layer_forward(args["params"], inputs, h0=h0).hidden

    def taking(*names):
        return {name: value for name, value in options.items() if name in names}

    layer = taking("activation", "reverse", "check_finite")
    return {
        "layer_forward": lambda params: bptt.layer_forward(params, inputs, h0=h0, **layer),
        "layer_backward": lambda params: bptt.layer_backward(
            params, inputs, hidden, h0=h0, d_hidden=hidden, **layer, **taking("input_grad")
        ),
        "head_logits": lambda params: bptt.head_logits(params, hidden, **taking("check_finite")),
        "head_loss_and_grad": lambda params: bptt.head_loss_and_grad(
            params, hidden, targets, **taking("check_finite", "reduction")
        ),
    }


LAYER_FUNCTIONS = ["layer_forward", "layer_backward"]
HEAD_FUNCTIONS = ["head_logits", "head_loss_and_grad"]


@pytest.mark.parametrize("function", LAYER_FUNCTIONS + HEAD_FUNCTIONS)
@pytest.mark.parametrize("params", [None, [1, 2], "UWbVc"])
def test_layer_and_head_params_that_are_not_a_mapping_are_a_type_error(params, function):
    with pytest.raises(TypeError, match=r"^params: expected a mapping holding"):
        layer_and_head_calls()[function](params)


@pytest.mark.parametrize(
    ("function", "name"),
    [(function, name) for function in LAYER_FUNCTIONS for name in ("U", "W", "b")]
    + [(function, name) for function in HEAD_FUNCTIONS for name in ("V", "c")],
)
def test_layer_and_head_params_missing_their_own_key_are_a_value_error_naming_it(function, name):
    params = {k: v for k, v in valid()["params"].items() if k != name}

    with pytest.raises(
        ValueError, match=rf"^params: expected a mapping holding .*; missing {name}"
    ):
        layer_and_head_calls()[function](params)


def test_the_layer_needs_no_head_params_and_the_head_no_layer_params():
    params = valid()["params"]
    calls = layer_and_head_calls()

    for function in LAYER_FUNCTIONS:
        calls[function]({name: params[name] for name in ("U", "W", "b")})
    for function in HEAD_FUNCTIONS:
        calls[function]({name: params[name] for name in ("V", "c")})


@pytest.mark.parametrize(
    ("function", "name", "shape"),
    [(function, "W", (H, H + 1)) for function in LAYER_FUNCTIONS]
    + [(function, "c", (O + 1,)) for function in HEAD_FUNCTIONS],
)
def test_layer_and_head_params_of_the_wrong_shape_are_a_value_error_naming_them(
    function, name, shape
):
    with pytest.raises(ValueError, match=quoted(name)):
        layer_and_head_calls()[function](params_with(name, np.zeros(shape, np.float32)))


@pytest.mark.parametrize("value", [None, "yes", 1], ids=repr)
@pytest.mark.parametrize(
    ("function", "flag"),
    [(f, "check_finite") for f in LAYER_FUNCTIONS + HEAD_FUNCTIONS]
    + [(f, "reverse") for f in LAYER_FUNCTIONS]
    + [("layer_backward", "input_grad")],
)
def test_a_layer_or_head_flag_that_is_not_a_bool_is_a_type_error_naming_it(function, flag, value):
    with pytest.raises(TypeError, match=rf"^{flag}: expected True or False"):
        layer_and_head_calls(**{flag: value})[function](valid()["params"])


@pytest.mark.parametrize("function", LAYER_FUNCTIONS)
def test_an_unknown_activation_of_the_layer_is_a_value_error_naming_it(function):
    with pytest.raises(ValueError, match=r"^activation: expected 'tanh', 'sigmoid', 'relu' or"):
        layer_and_head_calls(activation="gelu")[function](valid()["params"])


def test_an_unknown_reduction_of_the_head_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match=r"^reduction: expected 'sum' or 'mean', got 'max'"):
        layer_and_head_calls(reduction="max")["head_loss_and_grad"](valid()["params"])


@pytest.mark.parametrize(
    ("name", "array", "error"),
    [
        ("hidden", np.zeros((T + 1, B, H), np.float32), ValueError),
        ("hidden", np.zeros((T, B, H), np.float64), TypeError),
        ("d_hidden", np.zeros((T, B, H + 1), np.float32), ValueError),
        ("d_h_last", np.zeros((B + 1, H), np.float32), ValueError),
        ("d_h_last", with_nan(np.zeros((B, H), np.float32)), ValueError),
    ],
    ids=["hidden-T+1", "hidden-float64", "d_hidden-H", "d_h_last-B", "d_h_last-nan"],
)
def test_layer_backward_with_a_bad_state_array_raises_naming_it(name, array, error):
    args = valid()
    hidden = bptt.layer_forward(args["params"], args["inputs"], h0=args["h0"]).hidden
    arrays = {"hidden": hidden, "d_hidden": None, "d_h_last": None, name: array}

    with pytest.raises(error, match=f"^{name}: "):
        bptt.layer_backward(
            args["params"], args["inputs"], arrays.pop("hidden"), h0=args["h0"], **arrays
        )


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        (np.array([T + 1, 0]), r"^lengths: length 4 of sequence b=0 is out of range"),
        (np.array([1, 2, 3]), r"^lengths: expected shape \(B,\) = \(2,\)"),
        (np.array([1.5, 2.0]), r"^lengths: "),
    ],
    ids=["T+1", "B+1", "float"],
)
def test_bad_lengths_are_an_error_naming_lengths(lengths, message):
    args = valid()

    with pytest.raises((ValueError, TypeError), match=message):
        bptt.layer_forward(args["params"], args["inputs"], lengths=lengths)


# Unbatched calls: each error speaks of the unbatched shapes the caller passed, not of the
# batch of one the core reads.
UNBATCHED_CASES = {
    "layer_forward-h0": (
        lambda p, x, hidden, y: bptt.layer_forward(p, x, h0=np.zeros(H + 1, np.float32)),
        r"^h0: expected shape \(H,\) = \(5,\) for unbatched inputs, got \(6,\)",
    ),
    "layer_forward-inputs": (
        lambda p, x, hidden, y: bptt.layer_forward(p, np.zeros((T, D + 1), np.float32)),
        (
            r"^inputs: expected shape \(T, D\) with D = 4 \(params\['U'\] is \(H, D\) = "
            r"\(5, 4\)\) for unbatched inputs, got \(3, 5\)"
        ),
    ),
    "layer_forward-lengths": (
        lambda p, x, hidden, y: bptt.layer_forward(p, x, lengths=np.array([T])),
        r"^lengths: per-sequence lengths need a batch",
    ),
    "layer_backward-hidden": (
        lambda p, x, hidden, y: bptt.layer_backward(p, x, np.zeros((T, H + 1), np.float32)),
        r"^hidden: expected shape \(T, H\) = \(3, 5\) for unbatched inputs, got \(3, 6\)",
    ),
    "layer_backward-d_hidden": (
        lambda p, x, hidden, y: bptt.layer_backward(
            p, x, hidden, d_hidden=np.zeros((T + 1, H), np.float32)
        ),
        r"^d_hidden: expected shape \(T, H\) = \(3, 5\) for unbatched inputs, got \(4, 5\)",
    ),
    "layer_backward-d_h_last": (
        lambda p, x, hidden, y: bptt.layer_backward(
            p, x, hidden, d_h_last=np.zeros((1, H), np.float32)
        ),
        r"^d_h_last: expected shape \(H,\) = \(5,\) for unbatched inputs, got \(1, 5\)",
    ),
    "head_logits-hidden": (
        lambda p, x, hidden, y: bptt.head_logits(p, np.zeros((T, H + 1), np.float32)),
        r"^hidden: expected shape \(T, H\) = \(3, 5\) for unbatched inputs, got \(3, 6\)",
    ),
    "head_loss_and_grad-targets": (
        lambda p, x, hidden, y: bptt.head_loss_and_grad(p, hidden, np.zeros((T, B), np.int64)),
        r"^targets: expected shape \(T,\) = \(3,\) for unbatched inputs, got \(3, 2\)",
    ),
    "head_loss_and_grad-soft-targets": (
        lambda p, x, hidden, y: bptt.head_loss_and_grad(
            p, hidden, np.zeros((T, O + 1), np.float32)
        ),
        r"^targets: expected shape \(T, O\) = \(3, 6\) for unbatched inputs, got \(3, 7\)",
    ),
    "loss_and_grad-h0": (
        lambda p, x, hidden, y: bptt.loss_and_grad(p, x, y, h0=np.zeros(H + 1, np.float32)),
        r"^h0: expected shape \(H,\) = \(5,\) for unbatched inputs, got \(6,\)",
    ),
    "loss_and_grad-soft-targets": (
        lambda p, x, hidden, y: bptt.loss_and_grad(p, x, np.zeros((T + 1, O), np.float32)),
        r"^targets: expected shape \(T, O\) = \(3, 6\) for unbatched inputs, got \(4, 6\)",
    ),
    "forward-h0": (
        lambda p, x, hidden, y: bptt.forward(p, x, h0=np.zeros((1, H), np.float32)),
        r"^h0: expected shape \(H,\) = \(5,\) for unbatched inputs, got \(1, 5\)",
    ),
}


@pytest.mark.parametrize("case", UNBATCHED_CASES)
def test_unbatched_calls_name_the_unbatched_shape_expected(case):
    call, message = UNBATCHED_CASES[case]
    args = valid()
    hidden = bptt.layer_forward(args["params"], args["inputs"]).hidden[:, 0]

    with pytest.raises(ValueError, match=message):
        call(args["params"], args["inputs"][:, 0], hidden, args["targets"][:, 0])
