"""Where loss_and_grad's gradients go, and which: out=... writes them into the caller's arrays
(a training loop's flat gradient vector), bit for bit what new arrays would hold, and refuses
every unusable out array before anything is written; input_grad=False leaves dL/dx out."""

import re

import numpy as np
import pytest

import bptt
from bptt import _model, reference

PARAM_NAMES = _model.PARAM_NAMES


def problem(dtype, tokens, unbatched=False, T=9, B=3, D=11, H=20, O=7, seed=0):
    rng = np.random.default_rng(seed)
    params = bptt.init_params(D, H, O, dtype=dtype, seed=seed)
    shape = (T,) if unbatched else (T, B)
    dense = rng.standard_normal((*shape, D)).astype(dtype)
    inputs = rng.integers(0, D, shape) if tokens else dense
    targets = rng.integers(0, O, shape)
    h0 = rng.uniform(-1, 1, (*shape[1:], H)).astype(dtype)
    return params, inputs, targets, h0


def flat_views(shapes: dict, dtype, offset: int = 1) -> tuple[np.ndarray, dict]:
    """Views of one vector, each starting `offset` elements after the previous one ends: not on
    the 64-byte boundaries of the core's own results."""
    sizes = [int(np.prod(shape)) for shape in shapes.values()]
    vector = np.full(offset * (len(sizes) + 1) + sum(sizes), np.nan, dtype)
    views, start = {}, offset
    for (name, shape), size in zip(shapes.items(), sizes, strict=True):
        views[name] = vector[start : start + size].reshape(shape)
        start += size + offset
    return vector, views


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("tokens", [False, True])
@pytest.mark.parametrize("unbatched", [False, True])
def test_out_arrays_receive_the_gradients_bit_for_bit(dtype, tokens, unbatched):
    params, inputs, targets, h0 = problem(dtype, tokens, unbatched)
    expected = bptt.loss_and_grad(params, inputs, targets, h0=h0)
    vector, views = flat_views({name: g.shape for name, g in expected.grads.items()}, dtype)
    result = bptt.loss_and_grad(params, inputs, targets, h0=h0, out=views)
    assert result.loss == expected.loss
    np.testing.assert_array_equal(result.h_last, expected.h_last)
    for name, grad in expected.grads.items():
        assert result.grads[name] is views[name]
        np.testing.assert_array_equal(views[name], grad, err_msg=name)
    assert np.isnan(vector[0])  # nothing written outside the views


def test_gradients_missing_from_out_come_in_new_arrays():
    params, inputs, targets, h0 = problem(np.float32, tokens=False)
    expected = bptt.loss_and_grad(params, inputs, targets, h0=h0)
    W = np.empty_like(params["W"])
    result = bptt.loss_and_grad(params, inputs, targets, h0=h0, out={"W": W})
    assert result.grads["W"] is W
    for name, grad in expected.grads.items():
        np.testing.assert_array_equal(result.grads[name], grad, err_msg=name)


@pytest.mark.parametrize("offset", [0, 4], ids=["aligned", "unaligned"])
def test_an_out_array_of_an_ndarray_subclass_is_returned_as_itself(tmp_path, offset):
    # np.memmap: a gradient written straight to a file, the returned array the caller's memmap
    params, inputs, targets, h0 = problem(np.float32, tokens=False)
    expected = bptt.loss_and_grad(params, inputs, targets, h0=h0)
    path = tmp_path / "dU.bin"
    path.write_bytes(bytes(offset + params["U"].nbytes))
    dU = np.memmap(path, np.float32, "r+", offset=offset, shape=params["U"].shape)
    result = bptt.loss_and_grad(params, inputs, targets, h0=h0, out={"U": dU})
    assert result.grads["U"] is dU
    np.testing.assert_array_equal(dU, expected.grads["U"])


@pytest.mark.parametrize("tokens", [False, True])
def test_the_oracle_takes_out_arrays_too(tokens):
    params, inputs, targets, h0 = problem(np.float64, tokens)
    expected = reference.loss_and_grad(params, inputs, targets, h0=h0)
    _, views = flat_views({name: params[name].shape for name in PARAM_NAMES}, np.float64)
    result = reference.loss_and_grad(params, inputs, targets, h0=h0, out=views)
    for name in PARAM_NAMES:
        assert result.grads[name] is views[name]
        np.testing.assert_array_equal(views[name], expected.grads[name])


def bad_outs(params, inputs):
    """(out, exception type, words the message must contain) for float inputs (T, B, D)."""
    U, W = params["U"], params["W"]
    vector = np.zeros(U.size + W.size, U.dtype)
    return [
        ([U], TypeError, "out: expected None or a dict"),
        ({"Z": np.empty_like(U)}, ValueError, "unexpected key 'Z'"),
        ({"U": U.tolist()}, TypeError, "out['U']: expected a NumPy array, got list"),
        ({"U": np.empty(U.shape, np.float64)}, TypeError, "out['U']: expected dtype float32"),
        ({"U": np.empty_like(W)}, ValueError, "out['U']: expected shape (H, D)"),
        ({"U": np.empty(U.shape[::-1], U.dtype).T}, ValueError, "C-contiguous"),
        ({"U": np.empty_like(U)[::-1]}, ValueError, "C-contiguous"),
        (
            {"U": U},
            ValueError,
            "out['U']: expected memory of its own, got an array sharing memory with params['U']",
        ),
        ({"x": inputs}, ValueError, "sharing memory with inputs"),
        (
            {"U": vector[: U.size].reshape(U.shape), "W": vector[U.size - 1 : -1].reshape(W.shape)},
            ValueError,
            "out['W']: expected memory of its own, got an array sharing memory with out['U']",
        ),
    ]


@pytest.mark.parametrize("case", range(len(bad_outs(*problem(np.float32, False)[:2]))))
def test_an_unusable_out_array_is_refused_before_anything_is_written(case):
    params, inputs, targets, h0 = problem(np.float32, tokens=False)
    out, error, words = bad_outs(params, inputs)[case]
    before = {name: array.copy() for name, array in params.items()}
    others = [
        a for a in (out.values() if isinstance(out, dict) else []) if isinstance(a, np.ndarray)
    ]
    others_before = [array.copy() for array in others]
    with pytest.raises(error, match=re.escape(words)):
        bptt.loss_and_grad(params, inputs, targets, h0=h0, out=out)
    for name, array in params.items():
        np.testing.assert_array_equal(array, before[name])
    for array, copy in zip(others, others_before, strict=True):
        np.testing.assert_array_equal(array, copy)


class ArrayInterface:
    """An argument that is neither a NumPy array nor a buffer: a tensor-like object exposing an
    array's memory through __array_interface__."""

    def __init__(self, array):
        self.array = array
        self.__array_interface__ = array.__array_interface__


@pytest.mark.parametrize(("argument", "gradient"), [("U", "U"), ("W", "W"), ("x", "x")])
def test_an_out_array_sharing_memory_with_an_array_like_argument_is_refused(argument, gradient):
    # The core reads the argument's own memory: writing a gradient there while it runs would
    # change what it reads.
    params, inputs, targets, h0 = problem(np.float32, tokens=False)
    given = params.get(argument, inputs)
    before = given.copy()
    if argument in params:
        params = params | {argument: ArrayInterface(given)}
    else:
        inputs = ArrayInterface(given)
    with pytest.raises(
        ValueError, match=re.escape(f"out['{gradient}']: expected memory of its own")
    ):
        bptt.loss_and_grad(params, inputs, targets, h0=h0, out={gradient: given})
    np.testing.assert_array_equal(given, before)


def test_a_read_only_out_array_is_refused():
    params, inputs, targets, h0 = problem(np.float32, tokens=False)
    U = np.zeros_like(params["U"])
    U.setflags(write=False)
    with pytest.raises(ValueError, match=r"out\['U'\]: expected a writable"):
        bptt.loss_and_grad(params, inputs, targets, h0=h0, out={"U": U})


@pytest.mark.parametrize("tokens", [False, True])
def test_out_may_not_name_a_gradient_the_call_does_not_compute(tokens):
    params, inputs, targets, h0 = problem(np.float32, tokens)
    x = np.zeros((*np.shape(inputs)[:2], params["U"].shape[1]), np.float32)
    with pytest.raises(ValueError, match="unexpected key 'x'"):
        bptt.loss_and_grad(params, inputs, targets, h0=h0, input_grad=tokens, out={"x": x})


@pytest.mark.parametrize(
    ("name", "shape", "words"),
    [
        ("h0", (1, 20), "out['h0']: expected shape (H,) = (20,) for unbatched inputs, got (1, 20)"),
        ("h0", (19,), "out['h0']: expected shape (H,) = (20,) for unbatched inputs, got (19,)"),
        ("x", (9, 1, 11), "out['x']: expected shape (T, D) = (9, 11) for unbatched inputs"),
    ],
)
def test_unbatched_out_arrays_are_checked_against_the_unbatched_shapes(name, shape, words):
    params, inputs, targets, h0 = problem(np.float32, tokens=False, unbatched=True)
    with pytest.raises(ValueError, match=re.escape(words)):
        bptt.loss_and_grad(params, inputs, targets, h0=h0, out={name: np.zeros(shape, np.float32)})


def test_input_grad_false_omits_x_and_changes_no_other_gradient():
    params = bptt.init_params(4, 6, 3, dtype=np.float64, seed=2)
    rng = np.random.default_rng(2)
    inputs, targets = rng.standard_normal((5, 2, 4)), rng.integers(0, 3, size=(5, 2))
    full = bptt.loss_and_grad(params, inputs, targets)
    without_x = bptt.loss_and_grad(params, inputs, targets, input_grad=False)
    assert set(without_x.grads) == set(full.grads) - {"x"}
    assert without_x.loss == full.loss
    for name, grad in without_x.grads.items():
        assert np.array_equal(grad, full.grads[name]), name
