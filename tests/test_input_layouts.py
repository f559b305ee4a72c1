"""Inputs in any memory layout, at any alignment and of any integer dtype give the results of
C-contiguous int64 and float inputs; no input is ever modified."""

import numpy as np
import pytest
from random_problems import (
    DTYPES,
    MEDIUM,
    Problem,
    all_arrays,
    assert_bitwise_equal,
    assert_rounding_close,
    make_problem,
    run,
    run_forward,
)

import bptt


def at_byte_offset(array, offset):
    """A C-contiguous, aligned copy of array whose data starts offset bytes past a 64-byte
    boundary: the same values, only at another address."""
    buffer = np.empty(array.nbytes + 128, np.uint8)
    start = (-buffer.ctypes.data) % 64 + offset
    copy = buffer[start : start + array.nbytes].view(array.dtype).reshape(array.shape)
    copy[...] = array
    assert copy.ctypes.data % 64 == offset
    assert copy.flags.c_contiguous
    assert copy.flags.aligned
    return copy


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("sizes", [MEDIUM], ids=["medium"])
def test_results_do_not_depend_on_the_memory_alignment_of_the_inputs(sizes, dtype, soft):
    problem = make_problem(6, **sizes, dtype=dtype, soft=soft)

    def at(offset):
        def move(a):
            return at_byte_offset(a, offset)

        return Problem(
            {k: move(v) for k, v in problem.params.items()},
            move(problem.inputs),
            move(problem.targets),
            move(problem.h0),
        )

    expected = all_arrays(run(at(0)), run_forward(at(0)))
    for offset in (8, 16, 24):  # every aligned position of a float64 in a 32-byte AVX vector
        moved = at(offset)
        assert_bitwise_equal(all_arrays(run(moved), run_forward(moved)), expected)


def strided(array):
    """The same values in a non-contiguous view: every other element of a twice-as-big array."""
    doubled = np.zeros((*array.shape, 2), array.dtype)
    doubled[..., 0] = array
    view = doubled[..., 0]
    assert not view.flags.c_contiguous or array.size <= 1
    return view


@pytest.mark.parametrize("layout", ["strided", "fortran", "reversed"])
@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_contiguous_and_fortran_ordered_arrays_give_the_contiguous_results(
    dtype, tokens, soft, layout
):
    problem = make_problem(8, **MEDIUM, dtype=dtype, tokens=tokens, soft=soft)

    def relayout(a):
        if layout == "strided":
            return strided(a)
        if layout == "fortran":
            return np.asfortranarray(a)
        # a negative-stride view of a reversed copy: the same values, walked backwards
        return np.flip(np.flip(a).copy())

    moved = Problem(
        {k: relayout(v) for k, v in problem.params.items()},
        relayout(problem.inputs),
        relayout(problem.targets),
        relayout(problem.h0),
    )
    if layout != "fortran":
        assert not moved.params["W"].flags.c_contiguous
    else:
        assert moved.params["W"].flags.f_contiguous
        assert not moved.params["W"].flags.c_contiguous

    expected = all_arrays(run(problem), run_forward(problem))
    actual = all_arrays(run(moved), run_forward(moved))

    # the values are the same; only the order of a few sums may change with the address
    assert_rounding_close(actual, expected, dtype, MEDIUM["T"])


@pytest.mark.parametrize("id_dtype", [np.int32, np.uint8, np.int16, np.uint64])
def test_token_ids_of_any_integer_dtype_work_like_int64(id_dtype):
    problem = make_problem(9, **MEDIUM, tokens=True)
    narrow = problem._replace(inputs=problem.inputs.astype(id_dtype))

    expected = all_arrays(run(problem), run_forward(problem))
    assert_bitwise_equal(all_arrays(run(narrow), run_forward(narrow)), expected)


@pytest.mark.parametrize("id_dtype", [np.int32, np.int8, np.int16])
def test_target_ids_of_any_signed_integer_dtype_work_like_int64(id_dtype):
    problem = make_problem(10, **MEDIUM, tokens=True)
    narrow = problem._replace(targets=problem.targets.astype(id_dtype))

    assert_bitwise_equal(all_arrays(run(narrow)), all_arrays(run(problem)))


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
def test_no_input_array_is_modified(tokens, soft):
    problem = make_problem(7, **MEDIUM, dtype=np.float32, tokens=tokens, soft=soft)
    params, inputs, h0 = problem.params, problem.inputs, problem.h0
    hidden = bptt.layer_forward(params, inputs, h0=h0).hidden
    d_hidden = np.ones_like(hidden)
    d_h_last = np.ones_like(problem.h0)
    arrays = [*problem.params.values(), problem.inputs, problem.targets, problem.h0]
    arrays += [hidden, d_hidden, d_h_last]
    copies = [a.copy() for a in arrays]

    run(problem, reduction="mean")
    run_forward(problem)
    bptt.layer_forward(params, inputs, h0=h0)
    bptt.layer_backward(params, inputs, hidden, h0=h0, d_hidden=d_hidden, d_h_last=d_h_last)
    bptt.head_logits(params, hidden)
    bptt.head_loss_and_grad(params, hidden, problem.targets)

    for array, copy in zip(arrays, copies, strict=True):
        assert array.dtype == copy.dtype
        assert np.array_equal(array, copy)
