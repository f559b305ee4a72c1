"""Problems for the tests of the public API's behaviour beyond its numbers (degenerate sizes,
determinism, layouts, threads, unbatched inputs, result memory), and the comparisons of their
results: bit for bit, or to rounding."""

from typing import NamedTuple

import closeness
import numpy as np

import bptt
from bptt import _model

ACTIVATIONS = _model.ACTIVATIONS
PARAM_NAMES = _model.PARAM_NAMES
DTYPES = [np.float32, np.float64]

# Large enough that every product inside the core is a blocked GEMM (Eigen evaluates products
# whose rows + cols + depth < 20 coefficient-wise), so bitwise comparisons between calls test
# the property they name and not the address dependence that
# test_results_do_not_depend_on_the_memory_alignment_of_the_inputs pins down.
MEDIUM = {"T": 12, "B": 4, "D": 20, "H": 32, "O": 24}


class Problem(NamedTuple):
    params: dict
    inputs: np.ndarray
    targets: np.ndarray
    h0: np.ndarray | None


def make_problem(seed, T, B, D, H, O, dtype=np.float64, tokens=False, soft=False, h0=True):
    """Params as init_params draws them, unit-scale pre-activations, 25% ignored ids."""
    rng = np.random.default_rng(seed)
    params = bptt.init_params(D, H, O, dtype=dtype, seed=seed)
    if tokens:
        inputs = rng.integers(0, D, (T, B))
    else:
        inputs = (rng.standard_normal((T, B, D)) / np.sqrt(D)).astype(dtype)
    if soft:
        targets = rng.random((T, B, O)).astype(dtype)
    else:
        targets = rng.integers(0, O, (T, B))
        targets[rng.random((T, B)) < 0.25] = -1
    return Problem(
        params, inputs, targets, rng.uniform(-1, 1, (B, H)).astype(dtype) if h0 else None
    )


def run(problem, **kwargs):
    return bptt.loss_and_grad(
        problem.params, problem.inputs, problem.targets, h0=problem.h0, **kwargs
    )


def run_forward(problem, **kwargs):
    return bptt.forward(problem.params, problem.inputs, h0=problem.h0, **kwargs)


def all_arrays(result, fwd=None):
    """Every output of a loss_and_grad (and forward) call, by name."""
    arrays = {"loss": np.asarray(result.loss), "h_last": result.h_last}
    arrays.update({f"grads[{k!r}]": v for k, v in result.grads.items()})
    if fwd is not None:
        arrays.update({"hidden": fwd.hidden, "logits": fwd.logits, "forward h_last": fwd.h_last})
    return arrays


def assert_bitwise_equal(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name].dtype == value.dtype, name
        assert np.array_equal(actual[name], value), name


def assert_rounding_close(actual: dict, expected: dict, dtype, steps: int):
    """Equal up to the reordering of sums: to rounding over the T + 1 steps, at the scale of
    each array's largest entry."""
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        closeness.assert_close(
            actual[name], value, dtype=dtype, terms=steps + 1, scale=np.abs(value), name=name
        )
