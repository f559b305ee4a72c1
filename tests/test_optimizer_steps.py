"""The core's optimizer steps are torch.optim's formulas evaluated one operation at a time in the
parameters' precision, as NumPy evaluates them: bitwise the same updates, in one pass."""

import math

import numpy as np
import pytest

import bptt
from bptt import _core
from bptt.optimizers import SGD, Adagrad, Adam
from bptt.parameter_vector import ParameterVector

DTYPES = [np.float32, np.float64]
SIZE = 1003  # not a multiple of any vector width: the scalar tail is covered too
# Large enough to be split across two threads (32,768 elements a thread at least), into shares
# that again end in a scalar tail.
SIZES = [SIZE, 2 * 32768 + 1003]


@pytest.fixture(params=SIZES, ids=["one pass", "split across two threads"])
def size(request):
    threads = bptt.get_num_threads()
    bptt.set_num_threads(2)
    yield request.param
    bptt.set_num_threads(threads)


def vectors(dtype, count, seed=0, size=SIZE):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(size).astype(dtype) for _ in range(count)]


def numpy_adagrad(param, grad, state_sum, lr, eps):
    state_sum += grad * grad
    param += (grad * -lr) / (np.sqrt(state_sum) + eps)


def numpy_adam(param, grad, exp_avg, exp_avg_sq, beta1, beta2, step, lr, eps):
    exp_avg += (grad - exp_avg) * (1 - beta1)
    exp_avg_sq *= beta2
    exp_avg_sq += (grad * (1 - beta2)) * grad
    denominator = np.sqrt(exp_avg_sq) / (1 - beta2**step) ** 0.5 + eps
    param += (exp_avg * -(lr / (1 - beta1**step))) / denominator


def numpy_sgd_momentum(param, grad, buffer, lr, momentum, first_step):
    if first_step:
        buffer[...] = grad
    else:
        buffer *= momentum
        buffer += grad
    param += buffer * -lr


@pytest.mark.parametrize("dtype", DTYPES)
def test_adagrad_steps_equal_numpys_formulas_bitwise(dtype, size):
    param, state = vectors(dtype, 1, size=size)[0], np.zeros(size, dtype)
    expected_param, expected_state = param.copy(), state.copy()
    for step in range(1, 6):
        grad = vectors(dtype, 1, seed=step, size=size)[0]
        _core.adagrad_step(param, grad, state, lr=0.05, eps=1e-10)
        numpy_adagrad(expected_param, grad, expected_state, 0.05, 1e-10)
    np.testing.assert_array_equal(param, expected_param)
    np.testing.assert_array_equal(state, expected_state)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_steps_equal_numpys_formulas_bitwise(dtype, size):
    param = vectors(dtype, 1, size=size)[0]
    exp_avg, exp_avg_sq = np.zeros(size, dtype), np.zeros(size, dtype)
    expected = [param.copy(), exp_avg.copy(), exp_avg_sq.copy()]
    beta1, beta2, lr, eps = 0.9, 0.999, 2e-3, 1e-8
    for step in range(1, 6):
        grad = vectors(dtype, 1, seed=step, size=size)[0]
        _core.adam_step(
            param,
            grad,
            exp_avg,
            exp_avg_sq,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            step=step,
        )
        numpy_adam(expected[0], grad, expected[1], expected[2], beta1, beta2, step, lr, eps)
    for got, want in zip([param, exp_avg, exp_avg_sq], expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_momentum_steps_equal_numpys_formulas_bitwise(dtype, size):
    param = vectors(dtype, 1, size=size)[0]
    buffer = np.full(size, np.nan, dtype)  # the first step sets it
    expected_param, expected_buffer = param.copy(), buffer.copy()
    for step in range(1, 6):
        grad = vectors(dtype, 1, seed=step, size=size)[0]
        _core.sgd_momentum_step(param, grad, buffer, lr=0.1, momentum=0.9, first_step=step == 1)
        numpy_sgd_momentum(expected_param, grad, expected_buffer, 0.1, 0.9, step == 1)
    np.testing.assert_array_equal(param, expected_param)
    np.testing.assert_array_equal(buffer, expected_buffer)


def test_the_gradient_is_only_read():
    param, grad, state = vectors(np.float32, 3)
    before = grad.copy()
    _core.adagrad_step(param, grad, np.abs(state), lr=0.1, eps=1e-10)
    np.testing.assert_array_equal(grad, before)


def adagrad_with(**replaced):
    arrays = dict(zip(["param", "grad", "sum"], vectors(np.float32, 3), strict=True))
    arrays["sum"] = np.abs(arrays["sum"])
    arrays.update(replaced)
    _core.adagrad_step(**arrays, lr=0.1, eps=1e-10)


@pytest.mark.parametrize(
    ("replaced", "error", "message"),
    [
        ({"param": [1.0, 2.0]}, TypeError, r"param: expected a NumPy array, got list"),
        ({"param": np.zeros(SIZE, np.int32)}, TypeError, r"param: expected .*float32 or float64"),
        (
            {"grad": np.zeros(SIZE, np.float64)},
            TypeError,
            r"grad: expected dtype float32 like param",
        ),
        (
            {"sum": np.zeros(SIZE + 1, np.float32)},
            ValueError,
            r"sum: expected 1003 values like param",
        ),
        (
            {"grad": np.zeros((SIZE, 1), np.float32)},
            ValueError,
            r"grad: expected a vector \(1 axis\)",
        ),
        (
            {"param": np.zeros(2 * SIZE, np.float32)[::2]},
            ValueError,
            r"param: expected a contiguous vector, got strides \(8,\)",
        ),
        (
            {"sum": np.zeros(SIZE, ">f4")},
            ValueError,
            r"sum: expected native byte order, got dtype >f4",
        ),
        (
            {"grad": np.frombuffer(bytearray(4 * SIZE + 1), np.float32, SIZE, offset=1)},
            ValueError,
            r"grad: expected a vector aligned for its dtype",
        ),
    ],
)
def test_bad_vectors_are_refused_naming_the_argument(replaced, error, message):
    with pytest.raises(error, match=message):
        adagrad_with(**replaced)


@pytest.mark.parametrize(
    ("shared", "message"),
    [
        (
            ("param", "grad"),
            r"grad: expected a vector of its own, got one sharing memory with param",
        ),
        (("grad", "sum"), r"sum: expected a vector of its own, got one sharing memory with grad"),
    ],
)
def test_vectors_sharing_memory_are_refused(shared, message):
    vector = np.abs(vectors(np.float32, 1)[0])
    before = vector.copy()
    with pytest.raises(ValueError, match=message):
        adagrad_with(**dict.fromkeys(shared, vector))
    np.testing.assert_array_equal(vector, before)


def test_sgds_first_step_flag_is_a_bool_not_anything_truthy():
    param, grad, buffer = vectors(np.float32, 3)
    for not_a_bool in (None, 1, np.array([True])):
        with pytest.raises(TypeError):
            _core.sgd_momentum_step(
                param, grad, buffer, lr=0.1, momentum=0.9, first_step=not_a_bool
            )


def test_a_read_only_vector_to_update_is_refused_and_left_unchanged():
    param = vectors(np.float32, 1)[0]
    param.flags.writeable = False
    before = param.copy()
    with pytest.raises(ValueError, match=r"param: expected a writable vector"):
        adagrad_with(param=param)
    np.testing.assert_array_equal(param, before)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"betas": (0.9, 1.0)}, r"betas: expected two numbers in \[0, 1\)"),
        ({"betas": (-0.1, 0.999)}, r"betas: expected two numbers in \[0, 1\)"),
        ({"eps": -1e-8}, r"eps: expected a finite number >= 0, got -1e-08"),
        ({"lr": -1.0}, r"lr: expected a finite number >= 0, got -1.0"),
        ({"lr": math.nan}, r"lr: expected a finite number >= 0, got nan"),
    ],
)
def test_adam_refuses_settings_torch_refuses(settings, message):
    params = ParameterVector({"W": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=f"^{message}"):
        Adam(params, **({"lr": 1e-3} | settings))


@pytest.mark.parametrize(
    ("optimizer", "settings", "error", "message"),
    [
        (Adagrad, {"lr": math.inf}, ValueError, r"lr: expected a finite number >= 0, got inf"),
        (Adagrad, {"eps": -1.0}, ValueError, r"eps: expected a finite number >= 0, got -1.0"),
        (SGD, {"momentum": -0.5}, ValueError, r"momentum: expected a finite number >= 0"),
        (SGD, {"lr": "0.1"}, TypeError, r"lr: expected a number >= 0, got '0.1'"),
        (SGD, {"lr": True}, TypeError, r"lr: expected a number >= 0, got True"),
    ],
)
def test_adagrad_and_sgd_refuse_settings_torch_refuses_naming_them(
    optimizer, settings, error, message
):
    params = ParameterVector({"W": np.zeros((2, 2), np.float32)})
    with pytest.raises(error, match=f"^{message}"):
        optimizer(params, **({"lr": 1e-3} | settings))
