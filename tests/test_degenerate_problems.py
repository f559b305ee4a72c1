"""The public API on degenerate problems: one step of one unit, empty sequences and batches, every
target ignored, logits of magnitude 1e4."""

import threading

import closeness
import numpy as np
import pytest
from random_problems import ACTIVATIONS, DTYPES, MEDIUM, make_problem, run, run_forward

import bptt
from bptt import reference


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_one_step_one_sequence_one_hidden_unit_matches_the_oracle(activation, dtype):
    problem = make_problem(1, T=1, B=1, D=3, H=1, O=2, dtype=dtype)
    p64 = {k: v.astype(np.float64) for k, v in problem.params.items()}

    result = run(problem, activation=activation)
    oracle = reference.loss_and_grad(
        p64,
        problem.inputs.astype(np.float64),
        problem.targets,
        h0=problem.h0.astype(np.float64),
        activation=activation,
    )

    # one step of a handful of terms of magnitude <= ~2, at the scale of values of unit size
    def assert_close(actual, expected, name):
        closeness.assert_close(actual, expected, dtype=dtype, terms=1, scale=1.0, name=name)

    assert_close(result.loss, oracle.loss, "loss")
    assert_close(result.h_last, oracle.h_last, "h_last")
    assert result.grads.keys() == oracle.grads.keys()
    for name, grad in oracle.grads.items():
        assert_close(result.grads[name], grad, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
@pytest.mark.parametrize(("T", "B"), [(0, 3), (5, 0), (0, 0)])
def test_empty_sequence_or_batch_gives_zero_loss_zero_gradients_and_h_last_equal_to_h0(
    T, B, tokens, soft, reduction, dtype
):
    D, H, O = 4, 5, 3
    problem = make_problem(2, T, B, D, H, O, dtype=dtype, tokens=tokens, soft=soft)

    result = run(problem, reduction=reduction)
    fwd = run_forward(problem)

    assert result.loss == 0.0
    expected_shapes = {"U": (H, D), "W": (H, H), "b": (H,), "V": (O, H), "c": (O,), "h0": (B, H)}
    if not tokens:
        expected_shapes["x"] = (T, B, D)
    assert {k: g.shape for k, g in result.grads.items()} == expected_shapes
    for name, grad in result.grads.items():
        assert grad.dtype == dtype, name
        assert not grad.any(), name
    np.testing.assert_array_equal(result.h_last, problem.h0)
    assert fwd.hidden.shape == (T, B, H)
    assert fwd.logits.shape == (T, B, O)
    np.testing.assert_array_equal(fwd.h_last, problem.h0)


def test_empty_sequence_without_h0_gives_a_zero_h_last():
    problem = make_problem(3, 0, 2, 4, 5, 3, h0=False)

    assert not run(problem).h_last.any()
    assert run(problem).h_last.shape == (2, 5)
    assert not run_forward(problem).h_last.any()


def test_an_empty_batch_of_a_very_long_sequence_returns_at_once_on_any_thread_count():
    # T = 10**12 steps of no sequence: zero-size arrays, so nothing to loop over.
    params = bptt.init_params(4, 5, 3, seed=0)
    ids = np.zeros((10**12, 0), np.int64)
    original = bptt.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            bptt.set_num_threads(threads)
            # A daemon thread, so that a hang fails the test instead of blocking the run.
            call = threading.Thread(
                target=lambda: results.append(bptt.loss_and_grad(params, ids, ids)), daemon=True
            )
            call.start()
            call.join(timeout=30)
            assert not call.is_alive(), f"{threads} thread(s): still running after 30 s"
    finally:
        bptt.set_num_threads(original)
    assert [r.loss for r in results] == [0.0, 0.0]


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_target_ignored_gives_zero_loss_and_zero_gradients_without_nan(dtype, reduction):
    problem = make_problem(12, **MEDIUM, dtype=dtype)
    problem = problem._replace(targets=np.full_like(problem.targets, -1))

    result = run(problem, reduction=reduction)

    assert result.loss == 0.0
    for name, grad in result.grads.items():
        assert not np.isnan(grad).any(), name
        assert not grad.any(), name
    assert np.isfinite(result.h_last).all()


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_logits_of_magnitude_1e4_give_a_finite_loss_and_finite_gradients(activation, dtype, soft):
    problem = make_problem(4, T=6, B=3, D=4, H=5, O=7, dtype=dtype, soft=soft)
    logits = run_forward(problem, activation=activation).logits
    factor = 1e4 / np.abs(logits).max()
    params = dict(problem.params)
    params["V"] = (params["V"] * factor).astype(dtype)
    params["c"] = (params["c"] * factor).astype(dtype)
    huge = problem._replace(params=params)

    result = run(huge, activation=activation)
    fwd = run_forward(huge, activation=activation)
    oracle = reference.loss_and_grad(
        {k: v.astype(np.float64) for k, v in params.items()},
        huge.inputs.astype(np.float64),
        huge.targets,
        h0=huge.h0.astype(np.float64),
        activation=activation,
    )

    assert np.abs(fwd.logits).max() == pytest.approx(1e4, rel=1e-3)
    assert np.isfinite(result.loss)
    for name, grad in result.grads.items():
        assert np.isfinite(grad).all(), name
    # logits of 1e4 carry an absolute rounding error of ~1e4 eps each, summed over 18 rows
    np.testing.assert_allclose(result.loss, oracle.loss, rtol=1e-3 if dtype == np.float32 else 1e-9)
