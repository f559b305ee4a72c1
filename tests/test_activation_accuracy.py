"""The logistic 1/(1 + e^{-a}) to within a few units of roundoff of the exact value at every a,
as libm's functions are: it is well conditioned (its relative condition number is a/(1 + e^a),
at most |a|), so an error many times the unit roundoff is the kernel's own."""

import numpy as np
import pytest

import bptt


def logistic_by_the_core(a: np.ndarray) -> np.ndarray:
    """The logistic of each value, as the recurrent layer's states: one step of B = a.size
    sequences of one unit, whose pre-activation U·x + W·h0 + b is exactly x = a."""
    dtype = a.dtype
    params = {"U": np.ones((1, 1), dtype), "W": np.zeros((1, 1), dtype), "b": np.zeros(1, dtype)}
    return bptt.layer_forward(
        params, a.reshape(1, -1, 1), activation="sigmoid", check_finite=False
    ).hidden.ravel()


def exact_logistic(a: np.ndarray) -> np.ndarray:
    a = a.astype(np.longdouble)
    e = np.exp(-np.abs(a))
    return np.where(a < 0, e, 1) / (1 + e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_logistic_is_within_a_few_units_of_roundoff_at_every_a(dtype):
    tiny = np.finfo(dtype).tiny
    a = np.linspace(np.log(tiny), 40, 400_001).astype(dtype)
    exact = exact_logistic(a)
    relative_error = np.abs(logistic_by_the_core(a) - exact) / exact
    # e^{-|a|} within about 2 units of roundoff (Eigen's exp), then a sum and a quotient of one
    # rounding each: 4 units, taken twice over
    unit_roundoff = np.finfo(dtype).eps / 2
    worst = int(np.argmax(relative_error))
    assert relative_error[worst] <= 8 * unit_roundoff, f"at a = {a[worst]}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_logistic_is_zero_below_the_smallest_normal_number_and_one_above_its_rounding(dtype):
    finfo = np.finfo(dtype)
    a = np.array([-np.inf, -1e30, np.log(finfo.tiny) - 1, 1e30, np.inf, np.nan], dtype)
    h = logistic_by_the_core(a)
    np.testing.assert_array_equal(h[:3], 0)
    np.testing.assert_array_equal(h[3:5], 1)
    assert np.isnan(h[5])
