"""`python -m bptt check`: the core's gradients on one problem, judged by the NumPy oracle and by
central finite differences, compared bitwise at 1 thread and at several, and the time each
takes; with --memory-budget, the same call under the budget: its plan, its results against the
unbudgeted call's, bit for bit, and its time; with --compute-dtype bfloat16, the call with
bfloat16 products against the float64 oracle, to bfloat16's accuracy, and at 1 thread and at
several, bit for bit."""

import argparse
import math
import sys
import time
from collections.abc import Callable

import numpy as np
from numpy.typing import DTypeLike

from bptt import _api, _params, memory, reference, reference_bfloat16
from bptt._core import build_info
from bptt._model import ACTIVATIONS, PARAM_NAMES, parameter_shapes
from bptt.errors import OutputLost, UsageError, check_integer
from bptt.memory_budget import MemoryPlan, memory_plan, parse_memory_budget
from bptt.results import LossAndGrad

__all__ = [
    "add_arguments",
    "check_against_finite_differences",
    "check_against_oracle",
    "check_arguments",
    "check_bfloat16",
    "check_memory_budget",
    "check_same_bits_across_threads",
    "memory_needed",
    "report_timings",
    "run",
]

GRADIENT_NAMES = (*PARAM_NAMES, "h0", "x")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", "-T", type=int, default=100, help="sequence length T (100)")
    parser.add_argument("--batch", "-B", type=int, default=32, help="batch size B (32)")
    parser.add_argument("--input", "-D", type=int, default=128, help="input size D (128)")
    parser.add_argument("--hidden", "-H", type=int, default=256, help="hidden size H (256)")
    parser.add_argument("--output", "-O", type=int, default=128, help="output size O (128)")
    parser.add_argument(
        "--dtype", choices=["float32", "float64"], default="float32", help="(float32)"
    )
    parser.add_argument("--activation", default="tanh", choices=ACTIVATIONS, help="(tanh)")
    parser.add_argument("--repeats", type=int, default=10, help="timed calls of the core (10)")
    parser.add_argument("--seed", type=int, default=0, help="of the random problem (0)")
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="also run the problem with this much working memory at most (e.g. 4MiB, 2GB or "
        "bytes) and compare it with the unbudgeted call, bit for bit",
    )
    parser.add_argument(
        "--compute-dtype",
        choices=["bfloat16"],
        help="also run the problem with bfloat16 products (float32 params), against the float64 "
        "oracle and at 1 thread and at several",
    )


def check_arguments(args: argparse.Namespace) -> None:
    """UsageError naming the first size, count or seed out of range."""
    for option, name in (
        ("-T/--steps", "steps"),
        ("-B/--batch", "batch"),
        ("-D/--input", "input"),
        ("-H/--hidden", "hidden"),
        ("-O/--output", "output"),
        ("--repeats", "repeats"),
    ):
        check_integer(option, getattr(args, name), 1)
    check_integer("--seed", args.seed, 0)
    if args.memory_budget is not None:
        _budget_plan(args)
    if args.compute_dtype is not None and args.dtype != "float32":
        raise UsageError(
            f"--compute-dtype {args.compute_dtype}: expected --dtype float32 (bfloat16 products "
            f"take float32 params), got --dtype {args.dtype}"
        )


def _budget_plan(args: argparse.Namespace) -> MemoryPlan:
    """The plan of the problem's call under --memory-budget; UsageError naming the option when
    the budget is not a size or is below the problem's minimum."""
    try:
        return memory_plan(
            args.steps,
            args.batch,
            args.input,
            args.hidden,
            args.output,
            dtype=args.dtype,
            memory_budget=parse_memory_budget(args.memory_budget),
        )
    except ValueError as error:
        raise UsageError(f"--memory-budget: {str(error).removeprefix('memory_budget: ')}") from None


def memory_needed(args: argparse.Namespace) -> int:
    """Bytes the check holds at its peak, about, all counted as float64 (the oracle's type, and
    no smaller than --dtype's): while the oracle runs, the problem and the core's gradients in
    --dtype and their float64 copies beside the oracle's own gradients (4 x the parameters and
    the inputs), its two states per step (a and h) and its six (T, B, O) arrays (logits, log
    softmax, one-hot targets, their gradient and two temporaries)."""
    T, B, D, H, O = args.steps, args.batch, args.input, args.hidden, args.output
    parameters = sum(math.prod(shape) for shape in parameter_shapes(D, H, O).values())
    return 8 * (4 * (parameters + T * B * D) + 2 * T * B * H + 6 * T * B * O + 5 * B * H + T * B)


def _problem(
    args: argparse.Namespace, dtype: DTypeLike
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(args.seed)
    params = _params.init_params(args.input, args.hidden, args.output, dtype=dtype, seed=args.seed)
    inputs = rng.standard_normal((args.steps, args.batch, args.input)).astype(dtype)
    targets = rng.integers(0, args.output, size=(args.steps, args.batch))
    h0 = (0.5 * rng.standard_normal((args.batch, args.hidden))).astype(dtype)
    return params, inputs, targets, h0


def _median_ms(call: Callable[[], object], repeats: int) -> float:
    call()  # warm-up: first-touch of buffers, thread start-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def _relative_error(value: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.max(np.abs(value - truth), initial=0.0) / max(np.max(np.abs(truth), initial=0.0), 1.0)
    )


def _float64_oracle(
    args: argparse.Namespace,
    params: dict[str, np.ndarray],
    inputs: np.ndarray,
    targets: np.ndarray,
    h0: np.ndarray,
) -> LossAndGrad:
    """The NumPy oracle on the problem's values, in float64."""
    return reference.loss_and_grad(
        {name: value.astype(np.float64) for name, value in params.items()},
        inputs.astype(np.float64),
        targets,
        h0=h0.astype(np.float64),
        activation=args.activation,
    )


def check_against_oracle(args: argparse.Namespace) -> bool:
    """The core in the requested dtype against the oracle in float64 on the same values."""
    dtype = np.dtype(args.dtype)
    params, inputs, targets, h0 = _problem(args, dtype)
    core = _api.loss_and_grad(params, inputs, targets, h0=h0, activation=args.activation)
    truth = _float64_oracle(args, params, inputs, targets, h0)
    # Rounding errors of sums of n terms grow like sqrt(n)·eps; the longest chains here are the
    # T-step recurrence and the (T·B)-row gradient sums.
    eps = np.finfo(dtype).eps
    tolerance = 8 * eps * np.sqrt((args.steps + 1) * max(args.batch, 1))
    print(f"core ({args.dtype}) against the NumPy oracle (float64), tolerance {tolerance:.1e}:")
    ok = True
    rows = [("loss", abs(core.loss - truth.loss) / max(abs(truth.loss), 1.0))]
    rows += [
        (f"d{name}", _relative_error(core.grads[name], truth.grads[name]))
        for name in GRADIENT_NAMES
    ]
    for name, error in rows:
        passed = bool(error <= tolerance)
        ok &= passed
        print(f"  {name:>5}  max error / max |value| = {error:.2e}  {'ok' if passed else 'FAILED'}")
    return ok


def check_against_finite_differences(
    args: argparse.Namespace, coordinates_per_gradient: int = 3
) -> bool:
    """The core's float64 gradients against central differences of its own loss."""
    params, inputs, targets, h0 = _problem(args, np.float64)
    variables = dict(params, h0=h0, x=inputs)

    def loss() -> float:
        model = {name: variables[name] for name in PARAM_NAMES}
        return _api.loss_and_grad(
            model,
            variables["x"],
            targets,
            h0=variables["h0"],
            activation=args.activation,
            check_finite=False,
        ).loss

    grads = _api.loss_and_grad(params, inputs, targets, h0=h0, activation=args.activation).grads
    rng = np.random.default_rng(args.seed + 1)
    step = 1e-6
    # Central differences err by ~eps·|L|/step (rounding) + step²·|L'''| (truncation).
    tolerance = 100 * (np.finfo(np.float64).eps * max(abs(loss()), 1.0) / step + step**2)
    print(
        f"core (float64) against central finite differences, step {step:g}, "
        f"tolerance {tolerance:.1e}:"
    )
    ok = True
    for name in GRADIENT_NAMES:
        array = variables[name]
        worst = 0.0
        for _ in range(coordinates_per_gradient):
            index = tuple(int(rng.integers(n)) for n in array.shape)
            saved = array[index]
            array[index] = saved + step
            up = loss()
            array[index] = saved - step
            down = loss()
            array[index] = saved
            worst = max(worst, abs((up - down) / (2 * step) - grads[name][index]))
        passed = bool(worst <= tolerance)
        ok &= passed
        print(
            f"  {'d' + name:>5}  max |analytic - numeric| = {worst:.2e}  "
            f"{'ok' if passed else 'FAILED'}"
        )
    return ok


def check_same_bits_across_threads(
    args: argparse.Namespace, compute_dtype: str | None = None
) -> bool:
    """The core's loss, gradients and h_last at 1 thread and at N, the default thread count (at
    least 2): the core promises the same bits at any thread count."""
    params, inputs, targets, h0 = _problem(args, np.dtype(args.dtype))
    before = _api.get_num_threads()
    threads = max(2, before)

    def results_at(thread_count: int) -> dict[str, np.ndarray]:
        _api.set_num_threads(thread_count)
        result = _api.loss_and_grad(
            params, inputs, targets, h0=h0, activation=args.activation, compute_dtype=compute_dtype
        )
        grads = {f"d{name}": result.grads[name] for name in GRADIENT_NAMES}
        return {"loss": np.float64(result.loss), **grads, "h_last": result.h_last}

    try:
        one, several = results_at(1), results_at(threads)
    finally:
        _api.set_num_threads(before)
    differing = [name for name, value in one.items() if value.tobytes() != several[name].tobytes()]
    verdict = (
        f"{', '.join(differing)} not the same bits  FAILED"
        if differing
        else "loss, every gradient and h_last the same bits  ok"
    )
    products = "" if compute_dtype is None else f", {compute_dtype} products"
    print(f"core ({args.dtype}{products}) at 1 and {threads} threads: {verdict}")
    return not differing


def check_bfloat16(args: argparse.Namespace) -> bool:
    """The core with bfloat16 products against the float64 oracle: the loss and every gradient
    within bfloat16's accuracy (bptt.reference_bfloat16's bounds, relative Frobenius errors)."""
    params, inputs, targets, h0 = _problem(args, np.float32)
    core = _api.loss_and_grad(
        params, inputs, targets, h0=h0, activation=args.activation, compute_dtype="bfloat16"
    )
    truth = _float64_oracle(args, params, inputs, targets, h0)
    gradient_bound = reference_bfloat16.GRADIENT_RELATIVE_ERROR
    loss_bound = reference_bfloat16.LOSS_RELATIVE_ERROR
    print(
        f"core (float32, bfloat16 products: {build_info()['bfloat16_products']}) against the "
        f"NumPy oracle (float64), relative errors within {loss_bound:g} (loss) and "
        f"{gradient_bound:g} (gradients, Frobenius):"
    )
    rows = [("loss", abs(core.loss - truth.loss) / max(abs(truth.loss), 1.0), loss_bound)]
    rows += [
        (
            f"d{name}",
            reference_bfloat16.relative_error(core.grads[name], truth.grads[name]),
            gradient_bound,
        )
        for name in GRADIENT_NAMES
    ]
    ok = True
    for name, error, bound in rows:
        passed = bool(error <= bound)
        ok &= passed
        print(f"  {name:>5}  relative error = {error:.2e}  {'ok' if passed else 'FAILED'}")
    return ok


def report_timings(args: argparse.Namespace) -> None:
    params, inputs, targets, h0 = _problem(args, np.dtype(args.dtype))
    core_ms = _median_ms(
        lambda: _api.loss_and_grad(params, inputs, targets, h0=h0, activation=args.activation),
        args.repeats,
    )
    oracle_ms = _median_ms(
        lambda: reference.loss_and_grad(params, inputs, targets, h0=h0, activation=args.activation),
        max(3, args.repeats // 3),
    )
    print(
        f"timings, loss and all gradients, {args.dtype}, {_api.get_num_threads()} thread(s), "
        "median:"
    )
    print(f"  core    {core_ms:9.2f} ms")
    speedup = oracle_ms / core_ms
    comparison = f"{speedup:.1f}x faster" if speedup >= 1 else f"{1 / speedup:.1f}x slower"
    print(f"  oracle  {oracle_ms:9.2f} ms   (core is {comparison})")


def _result_arrays(result: LossAndGrad) -> dict[str, np.ndarray]:
    """Every result of a loss_and_grad call, by name."""
    arrays = {"loss": np.float64(result.loss), "h_last": result.h_last}
    return arrays | {f"d{name}": grad for name, grad in result.grads.items()}


def check_memory_budget(args: argparse.Namespace) -> bool:
    """The core under --memory-budget: its plan, its results against the unbudgeted call's, bit
    for bit, and the time of each."""
    plan, budget = _budget_plan(args), parse_memory_budget(args.memory_budget)
    every_state = memory_plan(
        args.steps, args.batch, args.input, args.hidden, args.output, dtype=args.dtype
    )
    params, inputs, targets, h0 = _problem(args, np.dtype(args.dtype))

    def call(memory_budget: int | None) -> LossAndGrad:
        return _api.loss_and_grad(
            params, inputs, targets, h0=h0, activation=args.activation, memory_budget=memory_budget
        )

    expected, got = _result_arrays(call(None)), _result_arrays(call(budget))
    different = [name for name, value in expected.items() if not np.array_equal(got[name], value)]
    print(
        f"core under --memory-budget {args.memory_budget} ({budget:,} bytes): {plan.schedule}, "
        f"{plan.bytes:,} bytes of working memory (every state kept: {every_state.bytes:,}), "
        f"{plan.stored_states} states held, {plan.checkpoints} of them checkpoints, "
        f"{plan.recomputed_steps:g} of a forward pass computed again:"
    )
    print(
        "  loss, h_last and every gradient equal the unbudgeted call's bit for bit: "
        + ("ok" if not different else f"FAILED ({', '.join(different)} differ)")
    )
    budgeted_ms = _median_ms(lambda: call(budget), args.repeats)
    unbudgeted_ms = _median_ms(lambda: call(None), args.repeats)
    print(f"  time, median: {budgeted_ms:.2f} ms under the budget, {unbudgeted_ms:.2f} ms without")
    return not different


def run(args: argparse.Namespace) -> int:
    """The check's exit status: 0 when it passed, 1 when it failed; OutputLost when standard
    output took no more of its report (the check reads and writes no file: an OSError is
    that)."""
    try:
        return _run(args)
    except OSError as error:
        raise OutputLost(error) from None


def _run(args: argparse.Namespace) -> int:
    check_arguments(args)
    memory.check_available(
        memory_needed(args),
        f"a check of -T {args.steps}, -B {args.batch}, -D {args.input}, -H {args.hidden} and "
        f"-O {args.output}",
    )
    info = build_info()
    kernels = info["instruction_set"]
    if info["float64_instruction_set"] != kernels:
        kernels += f", float64 {info['float64_instruction_set']}"
    print(
        f"bptt check: T={args.steps} B={args.batch} D={args.input} H={args.hidden} "
        f"O={args.output}, {args.activation}; kernels {kernels} "
        f"(available: {', '.join(info['available_instruction_sets'])}), "
        f"Eigen {info['eigen_version']}, {info['compiler']}"
    )
    ok = check_against_oracle(args)
    ok &= check_against_finite_differences(args)
    ok &= check_same_bits_across_threads(args)
    report_timings(args)
    if args.memory_budget is not None:
        ok &= check_memory_budget(args)
    if args.compute_dtype is not None:
        ok &= check_bfloat16(args)
        ok &= check_same_bits_across_threads(args, compute_dtype=args.compute_dtype)
    print("check passed" if ok else "check FAILED", flush=True)  # a failed write fails here
    return 0 if ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    try:
        sys.exit(run(parser.parse_args()))
    except UsageError as error:
        parser.error(str(error))
