"""Calls that the fuzzer of the public API (tests/fuzz/fuzz_api.py) found to break what the API
promises, each as the smallest call that shows it, fixed; and the fuzzer itself, run for a few
seconds when atheris is installed."""

import closeness
import numpy as np
import pytest
from fuzzing import assert_the_fuzzer_finds_nothing
from memory_addresses import aligned_at

import bptt


@pytest.fixture(autouse=True)
def _thread_count_restored():
    threads = bptt.get_num_threads()
    yield
    bptt.set_num_threads(threads)


def small_problem(dtype=np.float32, T=2, B=2, D=3, H=4, O=5):
    rng = np.random.default_rng(0)
    params = bptt.init_params(D, H, O, dtype=dtype, seed=0)
    inputs = rng.standard_normal((T, B, D)).astype(dtype)
    return params, inputs, rng.integers(0, O, (T, B))


# -- forward: the head over the layer's own states ---------------------------------------------


@pytest.mark.parametrize("unbatched", [False, True])
def test_forward_with_V_of_another_hidden_size_names_params_V(unbatched):
    params, inputs, _ = small_problem()
    params["V"] = np.zeros((5, 3), np.float32)  # H = 3, the layer's is 4
    with pytest.raises(ValueError, match=r"params\['V'\]: expected shape \(O, H\) = \(5, 4\)"):
        bptt.forward(params, inputs[:, 0] if unbatched else inputs)


@pytest.mark.parametrize("c_dtype", [np.float32, np.float64])
def test_forward_with_V_of_another_dtype_names_params_V(c_dtype):
    params, inputs, _ = small_problem()
    params["V"] = params["V"].astype(np.float64)
    params["c"] = params["c"].astype(c_dtype)
    with pytest.raises(
        TypeError, match=r"params\['V'\]: expected dtype float32 like params\['U'\]"
    ):
        bptt.forward(params, inputs)


def test_forward_returns_states_that_overflowed_from_finite_arguments():
    # the states are no argument of forward: like loss_and_grad, it computes with them
    params, inputs, targets = small_problem()
    params["U"][0] = np.finfo(np.float32).max
    inputs = np.abs(inputs) + 1  # every pre-activation of unit 0 beyond float32's range
    out = bptt.forward(params, inputs, activation="relu")
    layer = bptt.layer_forward(params, inputs, activation="relu")
    np.testing.assert_array_equal(out.hidden, layer.hidden)
    assert np.isinf(out.hidden[:, :, 0]).all()
    np.testing.assert_array_equal(
        out.h_last, bptt.loss_and_grad(params, inputs, targets, activation="relu").h_last
    )


def test_rounding_amplified_by_an_expanding_recurrence_is_no_more_than_the_oracle_s_own():
    # Identical rows of V make every dL/dh_t cancel to 0 exactly (softmax(o) is uniform whatever
    # h), and a W of identical rows, with the identity, multiplies what rounding leaves of it by
    # |sum(w)| = 1.39 a step over 65 steps. No float32 evaluation comes near the exact gradients
    # of about 1e-11: the core's are judged against the oracle's own float32 evaluation, whose
    # distance from the exact values is what rounding alone does here (the fuzzer's judge).
    rng = np.random.default_rng(0)
    T, D, H, O = 65, 2, 3, 3
    w = np.array([-0.439004, -0.46234962, -0.48455986], np.float32)
    params = {
        "U": np.tile(np.array([0.04141834, -0.0310837], np.float32), (H, 1)),
        "W": np.tile(w, (H, 1)),
        "b": np.full(H, -0.15490021, np.float32),
        "V": np.tile(w, (O, 1)),
        "c": np.full(O, -0.15490021, np.float32),
    }
    inputs, targets = rng.integers(0, D, T), rng.random((T, O)).astype(np.float32)
    options = {"activation": "identity", "reduction": "mean"}
    exact = bptt.reference.loss_and_grad(
        {k: v.astype(np.float64) for k, v in params.items()}, inputs, targets.astype(np.float64),
        **options,
    )  # fmt: skip
    own = bptt.reference.loss_and_grad(params, inputs, targets, **options)
    for threads in (1, 2):
        bptt.set_num_threads(threads)
        core = bptt.loss_and_grad(params, inputs, targets, **options)
        for name in ("U", "W", "b", "h0"):
            noise = np.max(np.abs(own.grads[name] - exact.grads[name]))
            assert np.max(np.abs(exact.grads[name])) < 1e-3 * noise  # the exact values cancel
            error = np.max(np.abs(core.grads[name] - exact.grads[name]))
            assert error <= closeness.GROWTH * noise, name


# -- memory_plan and memory budgets ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["T", "B", "D", "H", "O"])
@pytest.mark.parametrize("size", [2**63, 2**64])
def test_memory_plan_sizes_beyond_the_core_s_integers_are_a_value_error_naming_them(name, size):
    sizes = dict.fromkeys("TBDHO", 2) | {name: size}
    with pytest.raises(ValueError, match=rf"^{name}: expected an integer <= 2\*\*63 - 1"):
        bptt.memory_plan(**sizes)


@pytest.mark.parametrize("budget", [2**63, 2**64, 10**30, "16 EiB"])
def test_a_budget_beyond_the_core_s_integers_limits_nothing(budget):
    params, inputs, targets = small_problem()
    unbudgeted = bptt.loss_and_grad(params, inputs, targets)
    budgeted = bptt.loss_and_grad(params, inputs, targets, memory_budget=budget)
    assert budgeted.loss == unbudgeted.loss
    for name, grad in unbudgeted.grads.items():
        assert grad.tobytes() == budgeted.grads[name].tobytes(), name
    assert bptt.memory_plan(2, 2, 3, 4, 5, memory_budget=budget).schedule == "every state kept"


def test_the_minimum_budget_of_a_one_step_problem_is_the_smallest_loss_and_grad_accepts():
    bptt.set_num_threads(1)
    plan = bptt.memory_plan(1, 1, 1, 1, 1)  # 408 bytes; minimum_bytes was 472
    params, inputs, targets = small_problem(T=1, B=1, D=1, H=1, O=1)
    assert plan.minimum_bytes <= plan.bytes
    bptt.loss_and_grad(params, inputs, targets, memory_budget=plan.minimum_bytes)
    with pytest.raises(ValueError, match="memory_budget: expected at least"):
        bptt.loss_and_grad(params, inputs, targets, memory_budget=plan.minimum_bytes - 1)


@pytest.mark.parametrize(
    ("T", "B"), [(2**62, 1), (2**62, 2**40), (2**63 - 1, 1), (2**63 - 1, 2**63 - 1)]
)
def test_a_plan_too_large_to_count_is_refused_or_holds_its_states(T, B):
    try:
        plan = bptt.memory_plan(T, B, 1, 1, 1)
    except (ValueError, MemoryError):
        return
    assert 1 <= plan.stored_states <= T + 1
    assert plan.bytes >= plan.stored_states * B * 1 * 4  # float32 states (B, H = 1) it holds


@pytest.mark.parametrize(
    "widths",
    [{"H": 3 * 10**9}, {"H": 2**40}, {"H": 2**20, "D": 2**40}, {"H": 2**20, "O": 2**40}]
    + [{axis: 2**62} for axis in "DHO"],
    ids=lambda widths: ",".join(f"{axis}={size}" for axis, size in widths.items()),
)
def test_a_width_whose_arrays_no_address_space_holds_is_refused_naming_it(widths):
    # the blocks of H rows of H or O scalars of H = 3e9 overflowed the plan's 64-bit count
    sizes = {"T": 1, "B": 1, "D": 1, "H": 1, "O": 1} | widths
    axis, size = list(widths.items())[-1]
    with pytest.raises(
        MemoryError, match=rf"^T=1, B=1, .*{axis}={size}.*: expected a problem whose arrays fit"
    ):
        bptt.memory_plan(*sizes.values())


def test_a_wide_input_or_output_alone_is_planned():
    # U (H, D) of 3e9 scalars, which an address space holds: planned, its count not overflowed
    # (under a budget any plan fits: without one, the plan is for the memory available)
    for widths in ({"D": 3 * 10**9}, {"O": 3 * 10**9}):
        sizes = {"T": 1, "B": 1, "D": 1, "H": 1, "O": 1} | widths
        assert 0 < bptt.memory_plan(*sizes.values(), memory_budget=2**63 - 1).bytes < 2**63


def test_build_info_takes_no_arguments_as_any_python_function():
    with pytest.raises(TypeError, match=r"build_info\(\) takes 0 positional arguments but 1"):
        bptt.build_info(1)


# -- out= ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("name", "D", "H", "O"), [("h0", 1, 4, 2), ("x", 4, 1, 1)])
def test_out_arrays_at_any_address_receive_the_bits_of_new_arrays(name, D, H, O, threads):
    bptt.set_num_threads(threads)
    params, inputs, targets = small_problem(np.float64, T=1, B=1, D=D, H=H, O=O)
    new = bptt.loss_and_grad(params, inputs, targets).grads[name]
    for offset in range(0, 64, 8):
        out = aligned_at(new.shape, np.float64, offset)
        written = bptt.loss_and_grad(params, inputs, targets, out={name: out}).grads[name]
        assert written.tobytes() == new.tobytes(), f"out['{name}'] at byte offset {offset}"


@pytest.mark.parametrize("name", ["W", "h0"])
def test_an_out_array_sharing_a_memoryview_argument_s_memory_is_refused(name):
    params, inputs, targets = small_problem(np.float64)
    h0 = np.zeros((2, 4))
    buffer = h0 if name == "h0" else params[name]
    before = buffer.copy()
    shared = memoryview(buffer)
    if name == "h0":
        h0 = shared
    else:
        params[name] = shared
    with pytest.raises(ValueError, match=rf"out\['{name}'\]: expected memory of its own"):
        bptt.loss_and_grad(params, inputs, targets, h0=h0, out={name: np.asarray(shared)})
    np.testing.assert_array_equal(buffer, before)


# -- the fuzzer itself -------------------------------------------------------------------------------


def test_the_fuzzer_finds_nothing_in_a_few_seconds(tmp_path):
    assert_the_fuzzer_finds_nothing("fuzz_api.py", tmp_path)
