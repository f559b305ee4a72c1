"""Edge cases of the public API: degenerate sizes, extreme logits, determinism, memory layouts,
integer dtypes, unbatched inputs, Python threads, and the small helper functions."""

import concurrent.futures
import subprocess
import sys
import threading
from typing import NamedTuple

import numpy as np
import pytest

import bptt
from bptt import _core, reference

ACTIVATIONS = ["tanh", "sigmoid", "relu", "identity"]
PARAM_NAMES = ("U", "W", "b", "V", "c")
DTYPES = [np.float32, np.float64]


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


# Large enough that every product inside the core is a blocked GEMM (Eigen evaluates products
# whose rows + cols + depth < 20 coefficient-wise), so bitwise comparisons between calls below
# test the property they name and not the address dependence that
# test_results_do_not_depend_on_the_memory_alignment_of_the_inputs pins down.
MEDIUM = {"T": 12, "B": 4, "D": 20, "H": 32, "O": 24}


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


def assert_rounding_close(actual: dict, expected: dict, dtype):
    """Equal up to the reordering of sums: 64 ulp of each array's largest entry."""
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        assert actual[name].shape == value.shape, name
        atol = 64 * np.finfo(dtype).eps * max(float(np.abs(value).max(initial=0.0)), 1e-30)
        np.testing.assert_allclose(actual[name], value, rtol=0, atol=atol, err_msg=name)


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


# ---------------------------------------------------------------------------------------------
# Degenerate sizes.


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

    # one step of a handful of terms of magnitude <= ~2: 16 ulp of 2 is ample
    atol = 32 * np.finfo(dtype).eps
    np.testing.assert_allclose(result.loss, oracle.loss, rtol=0, atol=atol)
    np.testing.assert_allclose(result.h_last, oracle.h_last, rtol=0, atol=atol)
    assert result.grads.keys() == oracle.grads.keys()
    for name, grad in oracle.grads.items():
        assert result.grads[name].shape == grad.shape, name
        np.testing.assert_allclose(result.grads[name], grad, rtol=0, atol=atol, err_msg=name)


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


# ---------------------------------------------------------------------------------------------
# Extreme values.


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


# ---------------------------------------------------------------------------------------------
# Determinism, and inputs left alone.


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "sizes",
    [MEDIUM, {"T": 7, "B": 3, "D": 5, "H": 6, "O": 4}, {"T": 3, "B": 2, "D": 4, "H": 5, "O": 3}],
    ids=["medium", "small", "tiny"],
)
def test_repeated_calls_give_bitwise_equal_results(sizes, dtype, soft):
    problem = make_problem(5, **sizes, dtype=dtype, soft=soft)
    first = all_arrays(run(problem), run_forward(problem))

    # Earlier results are kept alive, so every call writes into freshly allocated outputs.
    kept = [all_arrays(run(problem), run_forward(problem)) for _ in range(32)]

    for arrays in kept:
        assert_bitwise_equal(arrays, first)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_repeated_forward_calls_give_bitwise_equal_hidden_states_for_every_activation(
    activation, dtype
):
    problem = make_problem(5, **MEDIUM, dtype=dtype)
    first = run_forward(problem, activation=activation)

    # Earlier results are kept alive, so every call writes into freshly allocated outputs.
    kept = [run_forward(problem, activation=activation) for _ in range(32)]

    for out in kept:
        assert np.array_equal(out.hidden, first.hidden)
        assert np.array_equal(out.logits, first.logits)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_and_loss_and_grad_give_bitwise_the_same_h_last(activation, dtype):
    problem = make_problem(5, **MEDIUM, dtype=dtype)

    outs = [run_forward(problem, activation=activation) for _ in range(32)]
    results = [run(problem, activation=activation) for _ in range(32)]

    for out, result in zip(outs, results, strict=True):
        assert np.array_equal(out.h_last, result.h_last)


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


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
def test_no_input_array_is_modified(tokens, soft):
    problem = make_problem(7, **MEDIUM, dtype=np.float32, tokens=tokens, soft=soft)
    U, W, b, V, c = (problem.params[k] for k in PARAM_NAMES)
    states = _core.layer_forward(U, W, b, problem.inputs, problem.h0)
    hidden = states[1:]
    d_hidden = np.ones_like(hidden)
    d_h_last = np.ones_like(problem.h0)
    arrays = [*problem.params.values(), problem.inputs, problem.targets, problem.h0]
    arrays += [hidden, d_hidden, d_h_last]
    copies = [a.copy() for a in arrays]

    run(problem, reduction="mean")
    run_forward(problem)
    _core.layer_forward(U, W, b, problem.inputs, problem.h0)
    _core.layer_backward(U, W, b, problem.inputs, hidden, problem.h0, d_hidden, d_h_last)
    _core.head_logits(V, c, hidden)
    _core.head_loss_and_grad(V, c, hidden, problem.targets)

    for array, copy in zip(arrays, copies, strict=True):
        assert array.dtype == copy.dtype
        assert np.array_equal(array, copy)


# ---------------------------------------------------------------------------------------------
# Memory layouts and integer dtypes.


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
    assert_rounding_close(actual, expected, dtype)


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


# ---------------------------------------------------------------------------------------------
# Unbatched inputs.


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
def test_unbatched_inputs_give_the_batch_of_one_results_without_the_batch_axis(
    tokens, soft, with_h0
):
    sizes = dict(MEDIUM, B=1)
    batched = make_problem(11, **sizes, tokens=tokens, soft=soft, h0=with_h0)
    unbatched = Problem(
        batched.params,
        batched.inputs[:, 0],
        batched.targets[:, 0],
        None if batched.h0 is None else batched.h0[0],
    )
    assert unbatched.inputs.ndim == (1 if tokens else 2)

    lg_b, lg_u = run(batched), run(unbatched)
    fwd_b, fwd_u = run_forward(batched), run_forward(unbatched)

    assert lg_u.loss == lg_b.loss
    assert np.array_equal(lg_u.h_last, lg_b.h_last[0])
    assert lg_u.grads.keys() == lg_b.grads.keys()
    for name in PARAM_NAMES:
        assert np.array_equal(lg_u.grads[name], lg_b.grads[name]), name
    assert np.array_equal(lg_u.grads["h0"], lg_b.grads["h0"][0])
    if not tokens:
        assert np.array_equal(lg_u.grads["x"], lg_b.grads["x"][:, 0])
    assert np.array_equal(fwd_u.hidden, fwd_b.hidden[:, 0])
    assert np.array_equal(fwd_u.logits, fwd_b.logits[:, 0])
    assert np.array_equal(fwd_u.h_last, fwd_b.h_last[0])


# ---------------------------------------------------------------------------------------------
# Ignored targets.


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


# ---------------------------------------------------------------------------------------------
# Python threads.


def test_concurrent_calls_from_four_threads_equal_serial_calls():
    problems = [
        make_problem(20 + i, T=40, B=8, D=24, H=48, O=32, dtype=dtype, tokens=tokens, soft=soft)
        for i, (dtype, tokens, soft) in enumerate(
            [
                (np.float32, False, False),
                (np.float64, True, True),
                (np.float32, True, False),
                (np.float64, False, True),
            ]
        )
    ]

    def work(problem):
        return [all_arrays(run(problem), run_forward(problem)) for _ in range(5)]

    serial = [work(problem) for problem in problems]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(work, problems))

    for serial_runs, threaded_runs in zip(serial, threaded, strict=True):
        for arrays in serial_runs + threaded_runs:
            assert_bitwise_equal(arrays, serial_runs[0])


DAEMON_THREADS_AT_EXIT = """
import threading, time
import numpy as np
import bptt
from bptt import _core

params = bptt.init_params(64, 256, 64, seed=0)
inputs = np.random.default_rng(0).standard_normal((400, 32, 64)).astype(np.float32)
targets = np.zeros((400, 32), np.int64)
vectors = [np.ones(4_000_000, np.float32) for _ in range(3)]
calls = [
    lambda: bptt.loss_and_grad(params, inputs, targets),
    lambda: bptt.forward(params, inputs),
    lambda: _core.adagrad_step(*vectors, lr=0.1, eps=1e-10),
]
for call in calls:
    threading.Thread(target=lambda call=call: [call() for _ in iter(int, 1)], daemon=True).start()
time.sleep(0.5)
"""


def test_daemon_threads_inside_the_core_do_not_crash_the_interpreter_at_exit(tmp_path):
    # Each call lasts milliseconds: the threads are inside the core, the GIL released, when the
    # interpreter shuts down.
    script = tmp_path / "daemons.py"
    script.write_text(DAEMON_THREADS_AT_EXIT)
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, str(script)], check=False, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr


# ---------------------------------------------------------------------------------------------
# init_params, build_info and the thread count.


@pytest.mark.parametrize("dtype", DTYPES)
def test_init_params_gives_the_documented_shapes_and_dtype(dtype):
    params = bptt.init_params(3, 5, 7, dtype=dtype, seed=0)

    assert params.keys() == set(PARAM_NAMES)
    assert {k: v.shape for k, v in params.items()} == {
        "U": (5, 3),
        "W": (5, 5),
        "b": (5,),
        "V": (7, 5),
        "c": (7,),
    }
    for name, value in params.items():
        assert value.dtype == dtype, name
        assert np.abs(value).max() <= 1 / np.sqrt(5), name  # uniform in ±1/sqrt(H)


def test_init_params_defaults_to_float32():
    assert all(v.dtype == np.float32 for v in bptt.init_params(2, 3, 4).values())


def test_init_params_with_the_same_seed_is_deterministic_and_with_another_differs():
    a = bptt.init_params(3, 5, 7, seed=42)
    b = bptt.init_params(3, 5, 7, seed=42)
    c = bptt.init_params(3, 5, 7, seed=43)

    for name in PARAM_NAMES:
        assert np.array_equal(a[name], b[name]), name
        assert not np.array_equal(a[name], c[name]), name


def test_init_params_feed_loss_and_grad_directly():
    params = bptt.init_params(4, 6, 3, seed=1)
    result = bptt.loss_and_grad(params, np.zeros((2, 1), np.int64), np.zeros((2, 1), np.int64))
    assert np.isfinite(result.loss)


def test_build_info_names_the_instruction_set_eigen_compiler_and_threads():
    info = bptt.build_info()

    for key in (
        "instruction_set",
        "available_instruction_sets",
        "eigen_version",
        "compiler",
        "num_threads",
    ):
        assert key in info, key
    assert info["instruction_set"] in info["available_instruction_sets"]
    assert info["eigen_version"].startswith("3.4")
    assert isinstance(info["compiler"], str)
    assert info["compiler"]
    assert info["num_threads"] == bptt.get_num_threads()


def test_set_num_threads_round_trips_through_get_num_threads():
    original = bptt.get_num_threads()
    try:
        for n in (1, 3, 2, np.int64(1)):
            bptt.set_num_threads(n)
            assert bptt.get_num_threads() == n
            assert bptt.build_info()["num_threads"] == n
    finally:
        bptt.set_num_threads(original)
    assert bptt.get_num_threads() == original


# How two threads share the work: each step's product split by columns (B·H² >= 1e6, and
# N·O >= 2^15 splits the softmax too); steps too small to split, as a pipeline (320 rows) or,
# for a short problem, split by whole products; a few steps of a wide batch fit neither.
TWO_THREAD_SCHEDULES = {
    "steps split": {"T": 8, "B": 64, "D": 16, "H": 128, "O": 64},
    "pipeline": {"T": 40, "B": 8, "D": 16, "H": 32, "O": 24},
    "split products": {"T": 6, "B": 2, "D": 5, "H": 7, "O": 4},
    "few steps of a wide batch": {"T": 4, "B": 300, "D": 3, "H": 8, "O": 5},
}


@pytest.mark.parametrize("schedule", TWO_THREAD_SCHEDULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_agree_to_rounding(dtype, schedule):
    problem = make_problem(30, **TWO_THREAD_SCHEDULES[schedule], dtype=dtype)
    original = bptt.get_num_threads()
    try:
        bptt.set_num_threads(1)
        one = all_arrays(run(problem), run_forward(problem))
        bptt.set_num_threads(2)
        two = all_arrays(run(problem), run_forward(problem))
    finally:
        bptt.set_num_threads(original)

    assert_rounding_close(two, one, dtype)


def test_the_torch_backend_loads_on_first_use_only():
    # A child process, so that no other test has imported torch already.
    import subprocess
    import sys

    pytest.importorskip("torch")
    code = (
        "import sys, bptt; assert 'torch' not in sys.modules; "
        "bptt.torch.RNN; assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


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


def test_release_scratch_frees_the_kept_buffers_and_results_stay_the_same():
    problem = make_problem(31, T=20, B=4, D=6, H=16, O=9, dtype=np.float32)
    first = all_arrays(run(problem))
    assert bptt.release_scratch() > 0  # the call above left its scratch for the next one
    assert bptt.release_scratch() == 0
    again = all_arrays(run(problem))  # on freshly allocated scratch
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_results_whose_memory_is_reused_are_never_shared_with_live_results():
    # Large enough (dx is 800 KiB) that the result arrays' memory is kept and reused once freed.
    problem = make_problem(32, T=100, B=32, D=64, H=64, O=16, dtype=np.float32)
    kept = run(problem)
    kept_copy = [array.copy() for array in all_arrays(kept).values()]
    dropped = run(problem)
    del dropped  # its arrays' memory goes back for reuse
    reused = run(problem)
    live_arrays, reused_arrays = all_arrays(kept).values(), all_arrays(reused).values()
    for live, again, before in zip(live_arrays, reused_arrays, kept_copy, strict=True):
        assert not np.shares_memory(live, again)
        np.testing.assert_array_equal(live, before)  # untouched by the call that reused memory
        np.testing.assert_array_equal(again, before)
    del reused
    assert bptt.release_scratch() > 0  # the freed results' kept memory, with the scratch
    assert bptt.release_scratch() == 0


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_changing_forwards_hidden_states_in_place_leaves_its_h_last_unchanged(unbatched):
    # As the oracle's: h_T is a result of its own, not a view of hidden[-1], so that masking
    # the hidden states in place cannot change the state carried to the next call.
    problem = make_problem(33, **MEDIUM, dtype=np.float32)
    if unbatched:
        problem = Problem(problem.params, problem.inputs[:, 0], None, problem.h0[0])
    out = run_forward(problem)
    h_last = out.h_last.copy()

    out.hidden[...] = 0

    assert not np.shares_memory(out.h_last, out.hidden)
    np.testing.assert_array_equal(out.h_last, h_last)


def test_a_result_made_read_only_can_be_made_writable_again():
    # As any NumPy array that owns its memory, and as results were before their memory was kept.
    problem = make_problem(34, **MEDIUM, dtype=np.float32)
    out, result = run_forward(problem), run(problem)
    arrays = {"hidden": out.hidden, "logits": out.logits, "h_last": out.h_last}
    arrays.update({f"grads[{name!r}]": grad for name, grad in result.grads.items()})
    for name, array in arrays.items():
        array.flags.writeable = False
        array.flags.writeable = True
        assert array.flags.writeable, name
