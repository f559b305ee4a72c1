"""loss_and_grad(memory_budget=): under any budget the core keeps some hidden states and computes
the others again, and its results are the unbudgeted call's, bit for bit; its working memory
stays within the budget; a budget below the problem's minimum, or one that is not a size, is
refused naming memory_budget; `bptt check --memory-budget` reports the same."""

import subprocess
import sys
from contextlib import contextmanager
from fractions import Fraction

import numpy as np
import pytest
from command_line import bptt_command
from memory_addresses import aligned_at
from random_problems import all_arrays, assert_bitwise_equal, make_problem, run
from working_memory import PEAK_SIZES, STATUS_BYTES, linux_only, working_memory_peak

import bptt
from bptt._model import ACTIVATIONS, REDUCTIONS
from bptt.memory_budget import parse_memory_budget


@contextmanager
def threads(count):
    """The core on `count` threads within, the thread count restored after (memory plans and
    the bits compared depend on it)."""
    before = bptt.get_num_threads()
    bptt.set_num_threads(count)
    try:
        yield
    finally:
        bptt.set_num_threads(before)


def plan_of(problem, memory_budget=None):
    T, B = problem.targets.shape[:2]
    (H, D), O = problem.params["U"].shape, problem.params["V"].shape[0]
    return bptt.memory_plan(
        T,
        B,
        D,
        H,
        O,
        dtype=problem.params["U"].dtype,
        tokens=problem.inputs.ndim == 2,
        memory_budget=memory_budget,
    )


def budgets_between(problem):
    """The minimum, fractions of the unbudgeted call's working memory (clipped at the minimum),
    and a generous budget that keeps every state."""
    plan = plan_of(problem)
    fractions = (0.05, 0.2, 0.5, 0.9)
    return sorted(
        {plan.minimum_bytes, 4 * plan.bytes}
        | {max(int(fraction * plan.bytes), plan.minimum_bytes) for fraction in fractions}
    )


# -- the same bits under any budget ---------------------------------------------------------------


def draw_configuration(seed):
    """One configuration of the problem and the call, drawn from its own seeded RNG."""
    rng = np.random.default_rng(seed)
    return {
        "T": int(rng.integers(1, 301)),
        "B": int(rng.integers(1, 17)),
        "D": int(rng.integers(1, 41)),
        "H": int(rng.integers(1, 129)),
        "O": int(rng.integers(1, 41)),
        "activation": str(rng.choice(ACTIVATIONS)),
        "reduction": str(rng.choice(REDUCTIONS)),
        "dtype": str(rng.choice(["float32", "float64"])),
        "tokens": bool(rng.integers(2)),
        "soft": bool(rng.integers(2)),  # else class ids, a quarter of them -1 (ignored)
        "h0": bool(rng.integers(2)),
        "threads": int(rng.integers(1, 3)),
    }


CONFIGURATIONS = [draw_configuration(seed) for seed in range(20260301, 20260301 + 40)]


def problem_of(config):
    return make_problem(
        7,
        **{name: config[name] for name in "TBDHO"},
        dtype=np.dtype(config["dtype"]),
        tokens=config["tokens"],
        soft=config["soft"],
        h0=config["h0"],
    )


@pytest.mark.parametrize(
    "config",
    CONFIGURATIONS,
    ids=lambda c: "-".join(f"{key}={value}" for key, value in c.items()),
)
def test_every_budget_gives_the_bits_of_the_unbudgeted_call(config):
    problem = problem_of(config)
    options = {"activation": config["activation"], "reduction": config["reduction"]}
    with threads(config["threads"]):
        expected = all_arrays(run(problem, **options))
        for budget in budgets_between(problem):
            got = all_arrays(run(problem, **options, memory_budget=budget))
            assert_bitwise_equal(got, expected)


def test_the_configurations_run_every_schedule():
    schedules = set()
    for config in CONFIGURATIONS:
        problem = problem_of(config)
        with threads(config["threads"]):
            schedules |= {plan_of(problem, budget).schedule for budget in budgets_between(problem)}
    assert schedules == {"every state kept", "segments", "binomial"}


@pytest.mark.parametrize("thread_count", [1, 2])
@pytest.mark.parametrize(
    ("schedule", "budget_of"),
    [
        ("segments", lambda plan: 4 * plan.minimum_bytes),
        ("binomial", lambda plan: plan.minimum_bytes),
    ],
)
def test_a_long_sequence_gives_the_same_bits_under_each_schedule(thread_count, schedule, budget_of):
    problem = make_problem(11, T=3000, B=2, D=16, H=32, O=16, dtype=np.float32, tokens=True)
    with threads(thread_count):
        budget = budget_of(plan_of(problem))
        assert plan_of(problem, budget).schedule == schedule
        expected = all_arrays(run(problem, reduction="mean"))
        assert_bitwise_equal(
            all_arrays(run(problem, reduction="mean", memory_budget=budget)), expected
        )


def test_a_budget_as_a_string_gives_the_same_bits():
    problem = make_problem(3, T=300, B=4, D=8, H=32, O=8, tokens=True)
    assert plan_of(problem, "200KiB").schedule == "segments"
    assert_bitwise_equal(all_arrays(run(problem, memory_budget="200KiB")), all_arrays(run(problem)))


# -- the minimum ----------------------------------------------------------------------------------

MINIMUM_PROBLEM = {"T": 300, "B": 16, "D": 8, "H": 128, "O": 8}


def test_a_budget_of_the_minimum_works_and_one_byte_less_is_refused_naming_the_minimum():
    problem = make_problem(5, **MINIMUM_PROBLEM, dtype=np.float32)
    minimum = plan_of(problem).minimum_bytes
    assert_bitwise_equal(all_arrays(run(problem, memory_budget=minimum)), all_arrays(run(problem)))
    with pytest.raises(ValueError, match=rf"^memory_budget: expected at least {minimum} bytes"):
        run(problem, memory_budget=minimum - 1)
    with pytest.raises(ValueError, match=rf"^memory_budget: expected at least {minimum} bytes"):
        plan_of(problem, minimum - 1)


def test_an_out_array_not_64_byte_aligned_counts_its_copy_against_the_budget():
    # the core writes such an array's gradient into a new, aligned one first (same bits)
    problem = make_problem(5, **MINIMUM_PROBLEM, dtype=np.float32)
    minimum = plan_of(problem).minimum_bytes
    shape = problem.inputs.shape
    aligned, unaligned = aligned_at(shape, np.float32, 0), aligned_at(shape, np.float32, 4)
    expected = all_arrays(run(problem, memory_budget=minimum, out={"x": aligned}))
    with pytest.raises(ValueError, match=rf"^memory_budget: expected at least {minimum + 153600}"):
        run(problem, memory_budget=minimum, out={"x": unaligned})  # T·B·D floats, 153600 bytes
    result = run(problem, memory_budget=minimum + unaligned.nbytes, out={"x": unaligned})
    assert result.grads["x"] is unaligned
    assert_bitwise_equal(all_arrays(result), expected)


@pytest.mark.parametrize("budget", [1, 76800, 76801], ids=["a byte", "the copies", "a byte more"])
def test_a_budget_the_copies_fill_is_refused_naming_the_least_budget_that_works(budget):
    # int32 ids are copied to int64: T·B ids of inputs and of targets, 2·4800·8 = 76800 bytes
    problem = make_problem(5, **MINIMUM_PROBLEM, dtype=np.float32, tokens=True)
    problem = problem._replace(
        inputs=problem.inputs.astype(np.int32), targets=problem.targets.astype(np.int32)
    )
    least = plan_of(problem).minimum_bytes + 2 * 300 * 16 * 8
    with pytest.raises(ValueError, match=rf"^memory_budget: expected at least {least} bytes"):
        run(problem, memory_budget=budget)
    with pytest.raises(ValueError, match=rf"^memory_budget: expected at least {least} bytes"):
        run(problem, memory_budget=least - 1)
    assert_bitwise_equal(all_arrays(run(problem, memory_budget=least)), all_arrays(run(problem)))


@pytest.mark.parametrize(("T", "B"), [(0, 3), (4, 0), (0, 0)])
@pytest.mark.parametrize("compute_dtype", [None, "bfloat16"])
def test_a_call_without_steps_or_sequences_is_planned_as_nothing_and_runs_under_a_byte(
    T, B, compute_dtype
):
    problem = make_problem(5, T=T, B=B, D=3, H=4, O=5, dtype=np.float32)
    for budget in (None, 1):
        plan = bptt.memory_plan(T, B, 3, 4, 5, memory_budget=budget, compute_dtype=compute_dtype)
        assert plan == (0, "every state kept", 0, 0, 0.0, 0)
        result = run(problem, memory_budget=budget, compute_dtype=compute_dtype)
        assert result.loss == 0.0


@pytest.mark.parametrize("name", ["D", "H", "O"])
def test_memory_plan_refuses_no_features_hidden_units_or_outputs_naming_them(name):
    sizes = dict.fromkeys("TBDHO", 2) | {name: 0}
    with pytest.raises(ValueError, match=rf"^{name}: expected an integer >= 1, got 0"):
        bptt.memory_plan(**sizes)


@pytest.mark.parametrize("value", ["2", 2.0, True, None], ids=repr)
def test_memory_plan_refuses_a_size_that_is_no_integer_as_a_type_error(value):
    sizes = dict.fromkeys("TBDHO", 2) | {"T": value}
    with pytest.raises(TypeError, match=r"^T: expected an integer >= 0"):
        bptt.memory_plan(**sizes)


# None would be NumPy's default dtype, float64: refused, as init_params refuses it
@pytest.mark.parametrize("dtype", [None, "float16", "int32", np.int32, "f8x"], ids=repr)
def test_memory_plan_refuses_a_dtype_as_init_params_does(dtype):
    for call in (
        lambda: bptt.memory_plan(2, 2, 2, 2, 2, dtype=dtype),
        lambda: bptt.init_params(2, 2, 2, dtype=dtype),
    ):
        with pytest.raises(TypeError, match=r"^dtype: expected float32 or float64, got "):
            call()


def test_memory_plan_takes_a_numpy_dtype():
    assert bptt.memory_plan(2, 2, 2, 2, 2, dtype=np.float64) == bptt.memory_plan(
        2, 2, 2, 2, 2, dtype="float64"
    )


def test_no_budget_below_the_minimum_is_accepted():
    problem = make_problem(5, T=200, B=4, D=10, H=32, O=10, tokens=True)
    minimum = plan_of(problem).minimum_bytes
    with pytest.raises(ValueError, match=rf"^memory_budget: expected at least {minimum} bytes"):
        run(problem, memory_budget=minimum - 1)


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (0, ValueError),
        (-5, ValueError),
        (True, TypeError),
        (1.5, TypeError),
        ("abc", ValueError),
        ("12 parsecs", ValueError),
        ("", ValueError),
        ("\u0664 MiB", ValueError),  # ARABIC-INDIC DIGIT FOUR: int() reads it, a size does not
        ("4\nMiB", ValueError),
        ("4MiB\n", ValueError),
        ("\t4MiB", ValueError),
    ],
    ids=repr,
)
@pytest.mark.parametrize("function", ["loss_and_grad", "memory_plan"])
def test_a_budget_that_is_not_a_size_is_refused_naming_memory_budget(value, error, function):
    problem = make_problem(5, T=10, B=2, D=3, H=4, O=3, tokens=True)
    call = {"loss_and_grad": run, "memory_plan": plan_of}[function]
    with pytest.raises(error, match=r"^memory_budget: expected "):
        call(problem, memory_budget=value)


def exact_decimal(fraction: Fraction) -> str:
    """A fraction in [0, 1) whose denominator divides a power of ten, in all its decimals."""
    decimals = 0
    while (fraction * 10**decimals).denominator != 1:
        decimals += 1
    return "0." + str(int(fraction * 10**decimals)).rjust(decimals, "0")


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * 2**20),
        ("2 GB", 2 * 10**9),
        ("1.5GiB", 3 * 2**29),
        ("64mib", 64 * 2**20),
        ("4096", 4096),
        ("10 kB", 10_000),
        ("0.1 kB", 100),  # exactly: 0.1 has no float
        ("18446744073709551616", 2**63 - 1),  # beyond the core's counts: no limit at all
        ("9" * 400, 2**63 - 1),  # more digits than a float holds
        ("1" + "0" * 400 + " EiB", 2**63 - 1),
        ("9" * 5000, 2**63 - 1),  # more digits than Python reads into an integer
        ("0" * 5000 + "4096.5" + "0" * 5000, 4096),
        # a byte as an exact fraction of the largest binary unit (60 decimals), and beyond them
        (exact_decimal(Fraction(1, 1024**6)) + " EiB", 1),
        (exact_decimal(Fraction(1, 1024**6)) + "0" * 5000 + "1 EiB", 1),
        (exact_decimal(Fraction(3, 2 * 1024**6)) + "9" * 5000 + " EiB", 1),
    ],
    ids=lambda text: text if len(str(text)) < 30 else f"{len(text)} characters",
)
def test_a_size_with_a_unit_is_read_in_bytes(text, size):
    assert parse_memory_budget(text) == size


def test_a_size_below_a_byte_of_thousands_of_digits_is_refused_quoted_short():
    tiny = "0." + "0" * 5000 + "1 GiB"
    with pytest.raises(
        ValueError,
        match=rf"^memory_budget: expected at least 1 byte, got '0\.0+…0+1 GiB' \({len(repr(tiny))} characters\)$",
    ):
        parse_memory_budget(tiny)


# -- the working memory within the budget ---------------------------------------------------------

# Measured in a child process (tests/working_memory.py).


@linux_only
def test_the_peak_measurement_sees_every_state_of_an_unbudgeted_call():
    T, B, _, H, _ = PEAK_SIZES
    # all but a few pages of the states: they are touched as they are written
    assert working_memory_peak(1, memory_budget=None) >= 0.99 * T * B * H * 4


@linux_only
@pytest.mark.parametrize("thread_count", [1, 2])
def test_the_working_memory_stays_within_a_budget_of_segments(thread_count):
    budget = 4 * 2**20
    with threads(thread_count):
        plan = bptt.memory_plan(*PEAK_SIZES, tokens=True, memory_budget=budget)
        assert plan.schedule == "segments"
        assert bptt.memory_plan(*PEAK_SIZES, tokens=True).bytes > 15 * budget
    assert working_memory_peak(thread_count, memory_budget=budget) <= budget


@linux_only
def test_the_working_memory_stays_within_a_budget_of_the_binomial_schedule():
    budget = 2**20
    assert bptt.memory_plan(*PEAK_SIZES, tokens=True, memory_budget=budget).schedule == "binomial"
    assert working_memory_peak(1, memory_budget=budget) <= budget


# NumPy advises its large arrays for transparent huge pages; once it has freed some, the C
# library may serve the core's next blocks from memory so advised, where a block of 1 MB takes a
# 2 MiB page. Under a budget the core's scratch is paged exactly: here it was 2 to 2.5 times the
# budget, with huge pages on "madvise" (not "never").
HUGE_PAGES_CHILD = (
    """
import ctypes, gc, sys
import numpy as np
import bptt
"""
    + STATUS_BYTES
    + """
T, B, D, H, O = 1_000_000, 1, 16, 8, 16
params = bptt.init_params(D, H, O, seed=0)
rng = np.random.default_rng(1)
inputs = rng.integers(0, D, (T, B)).astype(np.int64)  # temporaries made and freed
targets = rng.integers(0, O, (T, B)).astype(np.int64)
bptt.loss_and_grad(params, inputs[:10], targets[:10])
bptt.release_scratch()
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")
before = status_bytes("VmRSS")
result = bptt.loss_and_grad(params, inputs, targets, memory_budget=int(sys.argv[1]))
returned = result.h_last.nbytes + sum(grad.nbytes for grad in result.grads.values())
print(status_bytes("VmHWM") - before - returned)
"""
)


@linux_only
def test_the_working_memory_stays_within_a_small_budget_after_numpy_freed_large_arrays():
    budget = 10 * bptt.memory_plan(1_000_000, 1, 16, 8, 16, tokens=True).minimum_bytes
    child = subprocess.run(
        [sys.executable, "-c", HUGE_PAGES_CHILD, str(budget)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    assert int(child.stdout) <= budget


# -- bptt check -------------------------------------------------------------------------------------


def test_bptt_check_runs_its_problem_under_the_budget_and_finds_the_same_bits():
    sizes = {"-T": 600, "-B": 4, "-D": 8, "-H": 32, "-O": 8}
    plan = bptt.memory_plan(*sizes.values(), memory_budget="64KiB")
    assert plan.schedule != "every state kept"
    options = [str(part) for option, size in sizes.items() for part in (option, size)]
    result = bptt_command("check", *options, "--repeats", "1", "--memory-budget", "64KiB")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"--memory-budget 64KiB (65,536 bytes): {plan.schedule}" in result.stdout
    assert "every gradient equal the unbudgeted call's bit for bit: ok" in result.stdout
    assert "ms under the budget" in result.stdout
    assert result.stdout.endswith("check passed\n")
