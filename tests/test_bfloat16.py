"""compute_dtype="bfloat16": products of bfloat16 operands accumulated in float32, by the rule
written once in bptt.reference_bfloat16 (and README "bfloat16 products").

- The oracle's rounding is round-to-nearest-even, judged by ml_dtypes' and torch's bfloat16.
- The core against that oracle: the same rule, differing only in the order of float32 sums. A
  float32 sum of k terms in another order differs by about u32·√k relatively (u32 = 2**-24,
  closeness.py); rounding to bfloat16 then hides that difference, except with probability about
  u32·√k / (2 u) (u = 2**-8), when it moves the value across a rounding boundary, to the next
  bfloat16 value, a change of 2u that the recurrence carries on (and so a test of the rule
  cannot tell from a departure from it). On problems that round few values, N of them (h_t, da_t
  and dO_t: T·B·(2 H + O)), no value is expected to cross, N·u32·√k / (2 u) ≤ 0.02 (each test
  checks it), and the results agree as float32 computations do: relative Frobenius differences
  of at most GROWTH·u32·√(T + 1) (closeness.py's bound over the T + 1 steps), which the
  departures the tests must catch (a product operand not rounded, about u) exceed a
  hundredfold. Larger problems are judged by the float64 oracle below, and by the same bits
  across threads and budgets.
- The core against the float64 oracle, at the benchmark sizes: every product operand rounded
  to bfloat16 errs by at most u relatively, u/√3 in root mean square (a uniform error). A
  gradient is a sum of products each of whose factors carries the roundings of its chain:
  dW = Σ da h_prevᵀ with da from dO (rounded), V, W (rounded), h (rounded) and its own rounding,
  some six roundings, √6·u/√3 = √2·u ≈ 0.6% relatively in root mean square; back-propagation
  through a contracting recurrence (tanh, init_params' scale) sums a geometric series of them,
  a few times that. Hence 3e-2 (about 8 u) for every gradient's relative Frobenius error. The
  loss sums T·B cross-entropies whose logit errors (√3 roundings: V, h, and h's own inputs)
  enter with the signs of ŷ - y and largely cancel: 1e-2 (2.5 u) bounds it with room.
- The arguments: unknown compute dtypes and bfloat16 with float64 params are refused naming
  compute_dtype; None and the params' dtype name are today's computation, bit for bit.
- The bits: the same on any thread count and under any memory budget, as for float32.
- The memory: the stored states take 2 bytes a value, half of float32's, and memory_plan counts
  that, the rounded copies of U, W and V and the float32 blocks a chunk's states are converted
  (and its dense inputs rounded) into.
"""

import math

import closeness
import numpy as np
import pytest
from random_problems import all_arrays, assert_bitwise_equal, make_problem, run
from working_memory import PEAK_SIZES, linux_only, working_memory_peak

import bptt
from bptt import reference, reference_bfloat16
from bptt._model import ACTIVATIONS, PARAM_NAMES
from bptt.reference_bfloat16 import UNIT_ROUNDOFF, relative_error, round_to_bfloat16

BF16 = {"compute_dtype": "bfloat16"}
U32 = closeness.unit_roundoff(np.float32)


@pytest.fixture(autouse=True)
def restore_threads():
    before = bptt.get_num_threads()
    yield
    bptt.set_num_threads(before)


def is_bfloat16(values) -> bool:
    values = np.asarray(values)
    return values.dtype == np.float32 and np.array_equal(
        values.view(np.uint32) & 0xFFFF, np.zeros(values.shape, np.uint32)
    )


# -- the rounding -----------------------------------------------------------------------------


def test_rounding_is_to_nearest_with_ties_to_even():
    one_ulp = 2.0**-7  # bfloat16's spacing in [1, 2)
    values = np.array(
        [1.0, 1 + one_ulp / 2, 1 + 1.5 * one_ulp, 1 + 0.75 * one_ulp, -(1 + one_ulp / 2)],
        np.float32,
    )
    expected = np.array([1.0, 1.0, 1 + 2 * one_ulp, 1 + one_ulp, -1.0], np.float32)
    np.testing.assert_array_equal(round_to_bfloat16(values), expected)


def test_rounding_keeps_nan_and_infinity_and_overflows_past_the_largest_bfloat16():
    values = np.array([np.nan, np.inf, -np.inf, np.finfo(np.float32).max], np.float32)
    nan_with_low_payload = np.array([0x7F800001], np.uint32).view(np.float32)
    rounded = round_to_bfloat16(np.concatenate([values, nan_with_low_payload]))
    assert np.isnan(rounded[0])
    assert np.isnan(rounded[4])
    np.testing.assert_array_equal(rounded[1:4], [np.inf, -np.inf, np.inf])


def test_rounding_matches_ml_dtypes_and_torch_on_random_bits():
    bits = np.random.default_rng(0).integers(0, 2**32, 200_000, dtype=np.uint64)
    values = bits.astype(np.uint32).view(np.float32)
    values = values[np.isfinite(values)]
    ml_dtypes = pytest.importorskip("ml_dtypes")
    expected = values.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(round_to_bfloat16(values), expected)
    torch = pytest.importorskip("torch")
    by_torch = torch.from_numpy(values).to(torch.bfloat16).float().numpy()
    np.testing.assert_array_equal(round_to_bfloat16(values), by_torch)


# -- the core against the bfloat16 oracle -------------------------------------------------------


def float32_bound(T, B, D, H, O) -> float:
    """GROWTH·u32·√(T + 1), for problems where no rounding is expected to cross a bfloat16
    boundary (see the module docstring), which this checks."""
    rounded_values = T * B * (2 * H + O)
    expected_crossings = rounded_values * U32 * math.sqrt(max(D + H, O)) / (2 * UNIT_ROUNDOFF)
    assert expected_crossings <= 0.02, expected_crossings
    return closeness.GROWTH * U32 * math.sqrt(T + 1)


ORACLE_CASES = [
    # (seed, T, B, D, H, O, activation, tokens, reduction, h0)
    (1, 8, 2, 6, 10, 7, "tanh", False, "sum", True),
    (2, 6, 3, 9, 8, 5, "sigmoid", True, "mean", False),
    (3, 10, 1, 5, 12, 6, "relu", False, "mean", True),
    (4, 5, 2, 4, 14, 9, "identity", True, "sum", True),
    (5, 12, 1, 3, 9, 4, "tanh", True, "mean", True),
]


@pytest.mark.parametrize("case", ORACLE_CASES, ids=lambda case: f"seed{case[0]}-{case[6]}")
@pytest.mark.parametrize("threads", [1, 2])
def test_the_core_follows_the_bfloat16_rule_of_the_oracle(case, threads):
    seed, T, B, D, H, O, activation, tokens, reduction, h0 = case
    problem = make_problem(seed, T, B, D, H, O, dtype=np.float32, tokens=tokens, h0=h0)
    bptt.set_num_threads(threads)
    options = {"activation": activation, "reduction": reduction}
    got = run(problem, **options, **BF16)
    expected = reference_bfloat16.loss_and_grad(
        problem.params, problem.inputs, problem.targets, h0=problem.h0, **options
    )
    bound = float32_bound(T, B, D, H, O)
    assert relative_error(got.loss, expected.loss) <= bound
    for name, grad in expected.grads.items():
        assert relative_error(got.grads[name], grad) <= bound, name
    assert relative_error(got.h_last, expected.h_last) <= bound


def test_the_hidden_states_and_the_last_state_are_bfloat16_values():
    problem = make_problem(8, 40, 4, 12, 48, 10, dtype=np.float32)
    forward = bptt.forward(problem.params, problem.inputs, h0=problem.h0, **BF16)
    assert is_bfloat16(forward.hidden)
    assert is_bfloat16(forward.h_last)
    assert forward.logits.dtype == np.float32
    assert not is_bfloat16(forward.logits)
    assert is_bfloat16(run(problem, **BF16).h_last)


def test_the_layer_and_head_apart_follow_the_oracle_as_the_whole_model():
    problem = make_problem(9, 8, 2, 6, 10, 7, dtype=np.float32)
    params, inputs, targets, h0 = problem
    layer = bptt.layer_forward(params, inputs, h0=h0, **BF16)
    head = bptt.head_loss_and_grad(params, layer.hidden, targets, **BF16)
    grads = bptt.layer_backward(params, inputs, layer.hidden, h0=h0, d_hidden=head.d_hidden, **BF16)
    expected = reference_bfloat16.loss_and_grad(params, inputs, targets, h0=h0)
    bound = float32_bound(8, 2, 6, 10, 7)
    assert relative_error(head.loss, expected.loss) <= bound
    for name in ("V", "c"):
        assert relative_error(head.grads[name], expected.grads[name]) <= bound, name
    for name in ("U", "W", "b", "h0", "x"):
        assert relative_error(grads[name], expected.grads[name]) <= bound, name
    logits = bptt.head_logits(params, layer.hidden, **BF16)
    rounded_head = {"V": round_to_bfloat16(params["V"]), "c": params["c"]}
    assert relative_error(logits, reference.head_logits(rounded_head, layer.hidden)) <= bound


# -- the core against the float64 oracle ----------------------------------------------------------

BENCH_SIZES = {  # bench/problems.py's standard sizes (T, B, D, H, O)
    "charrnn": (25, 1, 65, 100, 65),
    "small": (50, 16, 65, 128, 65),
    "medium": (100, 32, 128, 256, 128),
    "large": (100, 64, 256, 1024, 256),
    "long": (1000, 8, 64, 256, 64),
}
GRADIENT_ERROR = reference_bfloat16.GRADIENT_RELATIVE_ERROR  # about 8 u: see the docstring
LOSS_ERROR = reference_bfloat16.LOSS_RELATIVE_ERROR  # about 2.5 u


@pytest.mark.parametrize(
    ("size", "tokens"),
    [(size, False) for size in BENCH_SIZES] + [("charrnn", True), ("small", True)],
)
def test_bfloat16_is_within_its_rounding_of_the_float64_oracle_at_the_benchmark_sizes(size, tokens):
    T, B, D, H, O = BENCH_SIZES[size]
    rng = np.random.default_rng(0)
    params = bptt.init_params(D, H, O, dtype=np.float32, seed=0)
    if tokens:
        inputs = rng.integers(0, D, (T, B))
    else:
        inputs = rng.standard_normal((T, B, D)).astype(np.float32)
    targets = rng.integers(0, O, (T, B))
    got = bptt.loss_and_grad(params, inputs, targets, **BF16)
    wide = {name: params[name].astype(np.float64) for name in PARAM_NAMES}
    exact = reference.loss_and_grad(wide, inputs if tokens else inputs.astype(np.float64), targets)
    assert relative_error(got.loss, exact.loss) <= LOSS_ERROR
    for name, grad in exact.grads.items():
        assert relative_error(got.grads[name], grad) <= GRADIENT_ERROR, name


# -- the arguments ----------------------------------------------------------------------------------


def small_problem(dtype=np.float32):
    return make_problem(10, 6, 2, 5, 8, 4, dtype=dtype)


@pytest.mark.parametrize("value", ["float16", "bf16", "BFLOAT16", 3, np.float32, b"bfloat16"])
def test_an_unknown_compute_dtype_is_refused_naming_it_and_the_accepted_ones(value):
    with pytest.raises(ValueError, match=r"compute_dtype: expected None, 'bfloat16'.*'float32'"):
        run(small_problem(), compute_dtype=value)


def every_entry_point(problem, compute_dtype):
    """Each public function that takes compute_dtype, called with it."""
    params, inputs, targets, h0 = problem
    hidden = bptt.forward(params, inputs, h0=h0).hidden
    T, B = targets.shape[:2]
    (H, D), O = params["U"].shape, params["V"].shape[0]
    dtype = params["U"].dtype.name
    option = {"compute_dtype": compute_dtype}
    return {
        "loss_and_grad": lambda: run(problem, **option),
        "forward": lambda: bptt.forward(params, inputs, h0=h0, **option),
        "layer_forward": lambda: bptt.layer_forward(params, inputs, h0=h0, **option),
        "layer_backward": lambda: bptt.layer_backward(params, inputs, hidden, h0=h0, **option),
        "head_logits": lambda: bptt.head_logits(params, hidden, **option),
        "head_loss_and_grad": lambda: bptt.head_loss_and_grad(params, hidden, targets, **option),
        "memory_plan": lambda: bptt.memory_plan(T, B, D, H, O, dtype=dtype, **option),
    }


@pytest.mark.parametrize("entry_point", list(every_entry_point(small_problem(), None)))
def test_bfloat16_with_float64_params_is_refused_naming_compute_dtype(entry_point):
    call = every_entry_point(small_problem(np.float64), "bfloat16")[entry_point]
    with pytest.raises(ValueError, match="compute_dtype: 'bfloat16' takes float32 parameters"):
        call()


@pytest.mark.parametrize("entry_point", list(every_entry_point(small_problem(), None)))
def test_an_unknown_compute_dtype_is_refused_by_every_entry_point(entry_point):
    call = every_entry_point(small_problem(), "float16")[entry_point]
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        call()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_none_and_the_params_dtype_give_the_bits_of_the_default(dtype):
    problem = small_problem(dtype)
    name = np.dtype(dtype).name
    for entry_point, call in every_entry_point(problem, None).items():
        expected = call()
        got = every_entry_point(problem, name)[entry_point]()
        if entry_point == "memory_plan":
            assert got == expected
        else:
            assert_bitwise_equal(dict(enumerate(flatten(got))), dict(enumerate(flatten(expected))))


def test_the_other_float_dtype_name_is_refused():
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        run(small_problem(np.float32), compute_dtype="float64")
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        run(small_problem(np.float64), compute_dtype="float32")


def flatten(result):
    """Every value of a result (a named tuple, a dict of gradients, an array), in order."""
    if isinstance(result, dict):
        return [result[name] for name in sorted(result)]
    if isinstance(result, tuple):
        return [value for part in result for value in flatten(part)]
    return [np.asarray(result)]


def test_bfloat16_changes_the_results():
    problem = small_problem()
    assert run(problem).loss != run(problem, **BF16).loss


# -- the same bits on any thread count and under any budget -------------------------------------


@pytest.mark.parametrize(
    "config",
    [(300, 8, 64, 256, 64, True), (30, 64, 256, 512, 256, False), (25, 1, 65, 100, 65, True)],
    ids=str,
)
def test_bfloat16_gives_the_same_bits_on_any_thread_count(config):
    *sizes, tokens = config
    problem = make_problem(12, *sizes, dtype=np.float32, tokens=tokens)
    bptt.set_num_threads(1)
    expected = all_arrays(
        run(problem, **BF16), bptt.forward(problem.params, problem.inputs, h0=problem.h0, **BF16)
    )
    for threads in (2, 3, 4):
        bptt.set_num_threads(threads)
        forward = bptt.forward(problem.params, problem.inputs, h0=problem.h0, **BF16)
        assert_bitwise_equal(all_arrays(run(problem, **BF16), forward), expected)


@pytest.mark.parametrize("threads", [1, 2])
def test_bfloat16_gives_the_same_bits_under_any_budget(threads):
    T, B, D, H, O = 3000, 2, 16, 32, 16  # long enough for every schedule
    problem = make_problem(13, T, B, D, H, O, dtype=np.float32, tokens=True)
    bptt.set_num_threads(threads)
    plan = bptt.memory_plan(T, B, D, H, O, tokens=True, **BF16)
    expected = all_arrays(run(problem, reduction="mean", **BF16))
    schedules = set()
    for budget in (plan.minimum_bytes, 4 * plan.minimum_bytes, plan.bytes // 2, 2 * plan.bytes):
        schedules.add(
            bptt.memory_plan(T, B, D, H, O, tokens=True, memory_budget=budget, **BF16).schedule
        )
        got = all_arrays(run(problem, reduction="mean", memory_budget=budget, **BF16))
        assert_bitwise_equal(got, expected)
    assert schedules == {"every state kept", "segments", "binomial"}


# -- the memory plan --------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens", [True, False])
@pytest.mark.parametrize("threads", [1, 2])
def test_the_memory_plan_counts_two_bytes_a_stored_state_and_the_rounded_copies(tokens, threads):
    T, B, D, H, O = 5000, 8, 64, 128, 64
    bptt.set_num_threads(threads)
    float32 = bptt.memory_plan(T, B, D, H, O, tokens=tokens)
    bfloat16 = bptt.memory_plan(T, B, D, H, O, tokens=tokens, **BF16)
    assert bfloat16.stored_states == float32.stored_states == T + 1
    half_the_states = 2 * (T + 1) * B * H  # bytes saved: 4 a state's value, 2 in bfloat16
    copies = 4 * (H * D + H * H + O * H)  # U, W and V rounded
    # A chunk (about 128 rows, chunks.hpp) of states converted to float32 in four blocks, and of
    # dense inputs rounded in two
    chunk_rows = 128 + 2 * B
    converted = 4 * (4 * chunk_rows * H + (0 if tokens else 2 * chunk_rows * D))
    saved = float32.bytes - bfloat16.bytes
    assert half_the_states - copies - converted - 4 * 64 <= saved <= half_the_states - copies


@linux_only
def test_the_working_memory_of_a_bfloat16_call_holds_its_states_in_two_bytes_each():
    T, B, D, H, O = PEAK_SIZES
    peak = working_memory_peak(1, **BF16)
    bptt.set_num_threads(1)
    plan = bptt.memory_plan(T, B, D, H, O, tokens=True, **BF16)
    assert 0.99 * (T + 1) * B * H * 2 <= peak <= plan.bytes  # float32's states alone: twice
    assert plan.bytes < (T + 1) * B * H * 4


def test_build_info_says_how_bfloat16_products_run():
    assert bptt.build_info()["bfloat16_products"].startswith(
        "float32 FMA on bfloat16-rounded operands"
    )


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_reads_sigma_prime_from_the_rounded_state(activation):
    problem = make_problem(14, 8, 2, 6, 10, 5, dtype=np.float32)
    got = run(problem, activation=activation, **BF16)
    expected = reference_bfloat16.loss_and_grad(
        problem.params, problem.inputs, problem.targets, h0=problem.h0, activation=activation
    )
    bound = float32_bound(8, 2, 6, 10, 5)
    for name, grad in expected.grads.items():
        assert relative_error(got.grads[name], grad) <= bound, name
