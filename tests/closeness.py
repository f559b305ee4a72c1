"""Equal to rounding: the one tolerance of the numerical tests, derived from the dtype and the
problem's size, never tuned per test.

A computed value differs from the exact one by rounding alone, and each floating-point
operation rounds with a relative error of at most the unit roundoff u = eps / 2 (2^-24 in
float32, 2^-53 in float64). A sum of n terms, in any order, errs by at most n·u·Σ|x_i|
(Higham, Accuracy and Stability of Numerical Algorithms, 4.2); independent roundings add up
like a random walk, to about sqrt(n)·u·Σ|x_i|, which is what these computations show. Hence

    tolerance = GROWTH · u · sqrt(n) · scale

- n, the growth from the problem's size: the length of the longest chain of roundings, T + 1
  steps of the recurrence (each step's error feeds the next), or the H terms of a dot product.
- scale: the size of the terms summed: the largest entry of the same computation done on
  absolute values where a test can compute it (it stays meaningful when a sum cancels), else
  the largest entry of the expected value, and at least 1 (values of unit size).
- GROWTH = 64: the constant of the bound, which covers each step's dot products of D + H
  terms, the few-ulp error of tanh, exp and log, and products blocked differently on other
  CPUs. The worst ratio error / (u·sqrt(n)·scale) in these tests' runs is 7.3 (bptt.torch.RNN
  against torch.nn.RNN), and 13 over 6000 random problems of the core against the oracle, where
  the bound was first set (32 eps, the same tolerance): 64 leaves a margin of five.
"""

import math

import numpy as np

GROWTH = 64


def unit_roundoff(dtype) -> float:
    """u = eps / 2 of a float dtype: NumPy's or JAX's, or torch's (read by its name)."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:  # torch.float32 and torch.float64 are no NumPy dtypes
        dtype = np.dtype(str(dtype).removeprefix("torch."))
    return float(np.finfo(dtype).eps) / 2


def tolerance(dtype, terms: int, scale: float = 1.0) -> float:
    """GROWTH · u · sqrt(terms) · scale: how far rounding may take a value computed in `dtype`
    through a chain of `terms` roundings of terms of size `scale` (see the module docstring)."""
    return GROWTH * unit_roundoff(dtype) * math.sqrt(max(terms, 1)) * scale


def magnitude(expected) -> float:
    """The scale of values of unit size: the largest |entry| of expected, at least 1."""
    return max(float(np.max(np.abs(as_numpy(expected)), initial=0.0)), 1.0)


def assert_close(actual, expected, *, dtype, terms: int, scale=None, name: str = "") -> None:
    """max |actual - expected| <= tolerance(dtype, terms, max(scale)), shapes equal; scale
    defaults to magnitude(expected). Arrays of NumPy, JAX or torch, compared in float64."""
    actual, expected = as_numpy(actual), as_numpy(expected)
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    if expected.size == 0:
        return
    bound = magnitude(expected) if scale is None else float(np.max(as_numpy(scale)))
    limit = tolerance(dtype, terms, bound)
    error = float(np.max(np.abs(actual.astype(np.float64) - expected.astype(np.float64))))
    assert error <= limit, f"{name}: error {error:.3g} > tolerance {limit:.3g}"


def finite_difference_tolerance(loss: float, step: float) -> float:
    """How far a central difference (L(v + step) - L(v - step)) / (2 step) in float64 may be
    from the derivative: rounding, u·|L|/step for each of the two losses, and truncation,
    step²·|L'''|/6 with L''' of the loss's size; 100 times both, as the constants are unknown."""
    size = max(abs(loss), 1.0)
    return 100 * (2 * unit_roundoff(np.float64) * size / step + step**2 * size)


def as_numpy(array) -> np.ndarray:
    """A NumPy array of array's values: NumPy, JAX, or a torch tensor (detached)."""
    detach = getattr(array, "detach", None)
    return np.asarray(array if detach is None else detach().cpu())
