"""The peer comparison: bptt against the NumPy oracle, PyTorch eager and JAX, and against the
machine's own GEMM throughput on the products the kernel performs, on the same data with the same
thread count, forward+backward (the loss and every gradient).

    python bench/compare.py                        # every size, 1 and 2 threads, about 6 minutes
    python bench/compare.py --quick --threads 1    # the CI smoke run
    python bench/compare.py --sizes large --threads 2 --peers torch,jax
    python bench/compare.py --compare bench/results/latest.json

One child process per thread count does all the timing (XLA fixes its thread count when its
client is created, so each count needs its own process); one more fresh child per implementation
and size measures peak memory. Each child times every implementation in interleaved rounds, so that noise
on this shared machine falls on all of them alike; the medians and the ratios are what to read.
Before timing, every peer's loss must agree with bptt's on the same data and weights (relative
1e-4, float32), and its gradients within GRAD_TOLERANCE; a peer that does not is reported, not timed.
"""

# ruff: noqa: RUF001, RUF003  (×, −, ÷ are the tables' and the maths' symbols)

import argparse
import contextlib
import datetime
import gc
import importlib.metadata
import json
import math
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gemm_limit
import numpy as np
import peers

from problems import STANDARD_SIZES, make_problem

HERE = Path(__file__).resolve().parent
LOSS_TOLERANCE = 1e-4  # relative, float32: sums of T·B log-probabilities in a different order
# max |g_peer − g_bptt| / max |g_bptt| over each gradient: float32 rounding grows with the T-step
# chain and the T·B-row sums, so this is loose, yet a wrong formula is off by O(1).
GRAD_TOLERANCE = 1e-3
SIZES = list(STANDARD_SIZES)
PROBLEMS = [*SIZES, "charrnn-tokens", "small-tokens"]
QUICK_PROBLEMS = ["charrnn", "small", "charrnn-tokens", "small-tokens"]
LIMIT = "limit"  # the GEMM limit's key, beside the peers'
# The targets at 2 threads: best peer's median ÷ bptt's median, and at 1 thread ahead of
# every peer; at the large size also 80% of the GEMM limit.
TARGET_RATIOS = {"charrnn": 4.0, "small": 2.5, "medium": 2.0, "large": 1.25, "long": 2.0}
TARGET_LIMIT_FRACTION = {"large": 0.8}
# XLA's documented switch to one thread, set for the 1-thread child. jax 0.10 still gives its pool
# one thread per core with it, so peers/jax_scan.set_threads also creates the client while the
# process may use one CPU (the pool's size is recorded). Only --flags go there: a bare word is
# read as the name of a flag file.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"
OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MEMORY_METHOD = (
    "peak resident set growth across one call in a fresh process per implementation and size, "
    "after one warm-up call (JIT compilation, thread pools) and with its result dropped (and "
    "bptt's scratch and the memory of its freed results, which it keeps between calls, freed, so "
    "that the call allocates them): VmHWM after the call, reset through /proc/self/clear_refs before it, minus VmRSS before it (glibc "
    "malloc told to return freed blocks: MALLOC_MMAP_THRESHOLD_=65536, MALLOC_TRIM_THRESHOLD_=0); "
    "the outputs (gradients) are included; the NumPy oracle also by tracemalloc's peak (NumPy "
    "arrays only). Besides the states, bptt holds, none of it growing with T: with one "
    "thread for the recurrence, logits and dO in (T·B)×O and dL/da in a ring of two chunks of "
    "about 128 rows; in the two-thread pipeline, the (T·B)×max(H, O) work buffer and 16 rows "
    "of Vᵀ·dO staged; W laid out once for the per-step products (H·H, i.e. H/B per-step "
    "vectors); and the cache-sized packing blocks of Eigen's matrix products"
)
TOKENS_NOTE = (
    "token inputs: bptt and the NumPy oracle take int ids; PyTorch gets one-hot float vectors "
    "(nn.RNN takes only floats); JAX gathers rows of Uᵀ (the embedding-equivalent)"
)


@dataclass
class Problem:
    name: str
    shape: tuple  # (T, B, D, H, O)
    tokens: bool
    params: dict
    inputs: np.ndarray
    targets: np.ndarray

    @classmethod
    def make(cls, name: str) -> "Problem":
        size, tokens = name.removesuffix("-tokens"), name.endswith("-tokens")
        params, inputs, targets = make_problem(size, tokens)
        return cls(name, STANDARD_SIZES[size], tokens, params, inputs, targets)


def problem_flops(name: str) -> int:
    return gemm_limit.flop_count(
        *STANDARD_SIZES[name.removesuffix("-tokens")], tokens=name.endswith("-tokens")
    )


# ---------------------------------------------------------------------------------- timing


def timed_calls(call, count: int) -> tuple[list[float], float, float]:
    """count timed calls: their wall times (s), and the block's wall and process CPU time."""
    times = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times, time.perf_counter() - wall0, time.process_time() - cpu0


def measure(
    cells: dict, *, budget: float, min_repeats: int, max_repeats: int, rounds: int, settle: float
) -> dict:
    """Median wall time of each cell's call after a warm-up, sampled in interleaved rounds.

    cells: name -> (call, share of the budget, whether to settle first). A cell that switches
    library first sleeps `settle` seconds, so that the previous library's idle threads (OpenBLAS
    spins for a while after a call) stop competing, then re-warms with one untimed call. The
    repeat count adapts: about budget·share seconds of calls, within [min_repeats, max_repeats].
    """
    samples, walls, cpus, repeats = {}, {}, {}, {}
    for name, (call, share, settles) in cells.items():
        if settles:
            time.sleep(settle)
        call()  # warm-up: first touch of buffers, thread start-up, caches
        times, wall, cpu = timed_calls(call, 1)
        samples[name], walls[name], cpus[name] = times, wall, cpu
        floor = min_repeats if times[0] < 1.0 else min(min_repeats, 3)  # seconds-long calls: 3
        repeats[name] = max(floor, min(max_repeats, round(budget * share / times[0])))
    for round_index in range(rounds):
        for name, (call, _, settles) in cells.items():
            left = repeats[name] - len(samples[name])
            count = math.ceil(left / (rounds - round_index)) if left > 0 else 0
            if count == 0:
                continue
            if settles:
                time.sleep(settle)
            if samples[name][0] < 0.2:  # re-warm after the other libraries ran; not for slow calls
                call()
            times, wall, cpu = timed_calls(call, count)
            samples[name] += times
            walls[name] += wall
            cpus[name] += cpu
    return {
        name: {
            "median_ms": 1e3 * statistics.median(times),
            "min_ms": 1e3 * min(times),
            "q1_ms": 1e3 * float(np.percentile(times, 25)),
            "q3_ms": 1e3 * float(np.percentile(times, 75)),
            "repeats": len(times),
            "cpu_per_wall": cpus[name] / walls[name],  # threads actually busy, on average
        }
        for name, times in samples.items()
    }


def cpu_seconds_machine() -> tuple[float, float]:
    """CPU seconds every process has run, and seconds stolen by the hypervisor, since boot."""
    with contextlib.suppress(OSError):
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        hz = os.sysconf("SC_CLK_TCK")
        return (user + nice + system + irq + softirq) / hz, steal / hz
    return math.nan, math.nan


class OtherLoad:
    """How many CPUs other processes (and the hypervisor) kept busy while this one measured: the
    noise of a shared machine, reported beside each row."""

    def __enter__(self):
        self.start = (time.perf_counter(), time.process_time(), *cpu_seconds_machine())
        return self

    def __exit__(self, *exc):
        wall0, own0, busy0, steal0 = self.start
        wall, own = time.perf_counter() - wall0, time.process_time() - own0
        busy, steal = cpu_seconds_machine()
        self.others_cpus = max(0.0, (busy - busy0 - own) / wall)
        self.steal_cpus = (steal - steal0) / wall


def wait_until_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (at most limit_s) until other processes keep less than `threshold` CPUs busy over one
    second; the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        with OtherLoad() as load:
            time.sleep(1.0)
        if load.others_cpus < threshold:
            break
    return round(time.perf_counter() - start, 1)


def relative_errors(loss, grads, ref_loss, ref_grads) -> tuple[float, dict]:
    loss_error = abs(loss - ref_loss) / max(abs(ref_loss), 1e-30)
    grad_errors = {}
    for name, ref in ref_grads.items():
        if name not in grads or np.shape(grads[name]) != np.shape(ref):
            grad_errors[name] = math.inf
            continue
        scale = max(float(np.max(np.abs(ref), initial=0.0)), 1e-30)
        grad_errors[name] = float(np.max(np.abs(grads[name] - ref), initial=0.0)) / scale
    return loss_error, grad_errors


# ---------------------------------------------------------------------------------- children


def run_child(args) -> None:
    """One thread count: check every peer against bptt, then time all of them, size by size."""
    n = args.child_threads
    info = {"threads": n, "xla_flags": os.environ.get("XLA_FLAGS", ""), "peers": {}, "cells": {}}
    modules = {}
    for name in [peers.SUBJECT, *args.peer_list]:
        if name == LIMIT:
            continue
        note = peers.load_note(name)
        if note:
            info["peers"][name] = {"available": False, "note": note}
            continue
        module = peers.load(name)
        module.set_threads(n)
        modules[name] = module
        info["peers"][name] = {
            "available": True,
            "label": module.NAME,
            "versions": module.versions(),
        }
    info["blas"] = blas_info()
    for problem_name in args.problem_list:
        problem = Problem.make(problem_name)
        print(
            f"[{plural(n, 'thread')}] {problem_name} {problem.shape}",
            file=sys.stderr,
            flush=True,
        )
        record = {"peers": {}}
        subject = modules[peers.SUBJECT].Runner(problem)
        subject()
        ref_loss, ref_grads = subject.result()
        record["loss"] = ref_loss
        cells = {peers.SUBJECT: (subject, 1.0, True)}
        for name, module in modules.items():
            if name == peers.SUBJECT:
                continue
            entry = record["peers"][name] = {}
            try:
                runner = module.Runner(problem)
                runner()  # JIT compilation happens here, outside the timing
                loss, grads = runner.result()
            except Exception as error:  # noqa: BLE001 (a peer failing here is reported, not fatal)
                entry.update(status="error", note=f"{type(error).__name__}: {error}")
                continue
            loss_error, grad_errors = relative_errors(loss, grads, ref_loss, ref_grads)
            worst = max(grad_errors, key=grad_errors.get)
            entry.update(loss=loss, loss_rel_error=loss_error, grad_rel_errors=grad_errors)
            if loss_error > LOSS_TOLERANCE or grad_errors[worst] > GRAD_TOLERANCE:
                entry.update(
                    status="mismatch",
                    note=(
                        f"loss relative error {loss_error:.1e} (tolerance {LOSS_TOLERANCE:.0e}), "
                        f"worst gradient d{worst} {grad_errors[worst]:.1e} "
                        f"(tolerance {GRAD_TOLERANCE:.0e}): not timed"
                    ),
                )
                print(f"  {name}: MISMATCH, {entry['note']}", file=sys.stderr, flush=True)
                continue
            entry["status"] = "ok"
            cells[name] = (runner, 1.0, True)
        products = []
        if LIMIT in args.peer_list:
            products = gemm_limit.products(*problem.shape, tokens=problem.tokens)
            share = 1.0 / len(products)
            for index, product in enumerate(products):
                cells[f"{LIMIT}:{index}"] = (gemm_limit.product_call(product), share, index == 0)
        if args.wait_quiet:
            record["waited_s"] = wait_until_quiet(args.wait_quiet)
        with OtherLoad() as load:
            timings = measure(
                cells,
                budget=args.budget,
                min_repeats=args.min_repeats,
                max_repeats=args.max_repeats,
                rounds=args.rounds,
                settle=args.settle,
            )
        record.update(others_cpus=load.others_cpus, steal_cpus=load.steal_cpus)
        record["bptt"] = timings.pop(peers.SUBJECT)
        for name, entry in record["peers"].items():
            if name in timings:
                entry.update(timings.pop(name))
        if products:
            record[LIMIT] = {
                "median_ms": sum(
                    p.count * timings[f"{LIMIT}:{i}"]["median_ms"] for i, p in enumerate(products)
                ),
                "products": [
                    {**p._asdict(), "flops": p.flops, **timings[f"{LIMIT}:{i}"]}
                    for i, p in enumerate(products)
                ],
            }
        info["cells"][problem_name] = record
        del problem, subject, cells
        gc.collect()
    Path(args.child_out).write_text(json.dumps(info, indent=1))


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_memory_child(args) -> None:
    """Peak extra memory of one implementation on one problem, in this fresh process."""
    name, problem = args.memory_impl, Problem.make(args.memory_problem)
    module = peers.load(name)
    module.set_threads(args.child_threads)
    runner = module.Runner(problem)
    runner()  # warm-up: JIT compilation, allocator and thread pools
    runner.release()
    if hasattr(runner, "release_kept_memory"):  # bptt's scratch, kept between calls
        runner.release_kept_memory()
    gc.collect()
    result = {}
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        before = rss_kib("VmRSS")
        runner()
        result["peak_extra_bytes"] = 1024 * (rss_kib("VmHWM") - before)
        result["method"] = "VmHWM reset"
    except OSError:  # no clear_refs: ru_maxrss growth, a lower bound when set-up peaked higher
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        runner()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result["peak_extra_bytes"] = 1024 * (after - before)
        result["method"] = "ru_maxrss growth"
    if name == "oracle":
        import tracemalloc

        runner.release()
        gc.collect()
        tracemalloc.start()
        runner()
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    Path(args.child_out).write_text(json.dumps(result))


def child_env(threads: int, memory: bool = False) -> dict:
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(threads)  # NumPy's BLAS even without threadpoolctl
    flags = env.get("XLA_FLAGS", "")
    if threads == 1 and XLA_ONE_THREAD not in flags:
        env["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    if memory:
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"
        env["MALLOC_TRIM_THRESHOLD_"] = "0"
    return env


def run_in_child(extra: list[str], env: dict, timeout: float) -> dict | None:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [sys.executable, str(Path(__file__).resolve()), *extra, "--child-out", str(out)]
        completed = subprocess.run(command, env=env, timeout=timeout, check=False)
        if completed.returncode != 0 or not out.exists():
            print(
                f"child {' '.join(extra)} failed with exit code {completed.returncode}",
                file=sys.stderr,
            )
            return None
        return json.loads(out.read_text())


# ---------------------------------------------------------------------------------- machine


def blas_info() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl is not installed", "numpy_config": numpy_blas_name()}]
    return [
        {k: v for k, v in pool.items() if k != "filepath"} | {"file": Path(pool["filepath"]).name}
        for pool in threadpool_info()
    ]


def numpy_blas_name() -> str:
    with contextlib.suppress(Exception):
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    return "unknown"


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def source_state() -> dict:
    """The repository's commit and whether the core's sources differ from it (the installed build
    is whatever was last built from the working tree)."""

    def git(*args):
        completed = subprocess.run(
            ["git", "-C", str(HERE.parent), *args], capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else None

    with contextlib.suppress(OSError):
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "cpp", "CMakeLists.txt", "python/bptt")
        return {"commit": commit, "core_sources_changed": bool(changed) if commit else None}
    return {"commit": None, "core_sources_changed": None}


def machine_description() -> dict:
    import bptt

    return {
        "cpu_model": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in ("bptt", "numpy", "torch", "jax", "jaxlib", "threadpoolctl", "matplotlib")
        },
        "bptt_build_info": bptt.build_info(),
        "bptt_source": source_state(),
        "numpy_blas": blas_info(),
        "env": {
            name: os.environ.get(name)
            for name in (
                *OPENBLAS_TUNING,
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "XLA_FLAGS",
                "BPTT_INSTRUCTION_SET",
            )
        },
        "openblas_tuning_set": [name for name in OPENBLAS_TUNING if name in os.environ],
        "load_average_start": os.getloadavg(),
        "niceness": os.nice(0),  # a negative one (root) keeps other processes' noise down
    }


# ---------------------------------------------------------------------------------- report


def derive(run: dict) -> None:
    """Best peer, ratio and GEMM-limit fraction of every cell, from the medians (kept in the JSON
    and recomputed the same way by --compare)."""
    for cell in run["cells"].values():
        timed = {
            name: entry["median_ms"]
            for name, entry in cell["peers"].items()
            if entry.get("status") == "ok" and "median_ms" in entry
        }
        bptt_ms = cell["bptt"]["median_ms"]
        cell["best_peer"] = min(timed, key=timed.get) if timed else None
        cell["ratio"] = timed[cell["best_peer"]] / bptt_ms if timed else None
        cell["limit_fraction"] = cell[LIMIT]["median_ms"] / bptt_ms if LIMIT in cell else None
        # Noise only ever adds time: on a busy machine the fastest calls say more than the median.
        minima = [cell["peers"][name].get("min_ms") for name in timed]
        if timed and None not in minima and "min_ms" in cell["bptt"]:
            cell["ratio_of_minima"] = min(minima) / cell["bptt"]["min_ms"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def fmt_ms(ms: float) -> str:
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_cell(ms: float, flops: int, entry: dict | None = None) -> str:
    """Median ms · GFLOP/s, and a * when the interquartile range is wider than half the median."""
    noisy = entry is not None and entry["q3_ms"] - entry["q1_ms"] > 0.5 * entry["median_ms"]
    return f"{fmt_ms(ms)} ms · {flops / ms / 1e6:.3g}{' *' if noisy else ''}"


def fmt_bytes(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**20:.2f}"


def threads_table(run: dict, labels: dict) -> list[str]:
    n = run["threads"]
    columns = [name for name in peers.PEERS if name in run["peers"]]
    header = ["problem (T, B, D, H, O)", "GFLOP", "bptt", *(labels[c] for c in columns)]
    has_limit = any(LIMIT in cell for cell in run["cells"].values())
    if has_limit:
        header.append("GEMM limit")
    header += [
        "best peer ÷ bptt",
        "limit ÷ bptt" if has_limit else None,
        "target",
        "CPUs busy elsewhere",
    ]
    header = [h for h in header if h is not None]
    lines = [
        f"### {plural(n, 'thread')}",
        "",
        (
            "Each cell: median ms · GFLOP/s (the analytic count above); * marks an interquartile "
            "range wider than half the median. Minima: the best peer's fastest call ÷ bptt's "
            "fastest, less sensitive to other processes than the medians' ratio. CPUs busy "
            "elsewhere: other processes' CPU use while the row was measured (the noise of a "
            "shared machine)."
        ),
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, cell in run["cells"].items():
        flops = problem_flops(name)
        row = [
            f"{name} {tuple(STANDARD_SIZES[name.removesuffix('-tokens')])}",
            f"{flops / 1e9:.3g}",
            fmt_cell(cell["bptt"]["median_ms"], flops, cell["bptt"]),
        ]
        for column in columns:
            entry = cell["peers"].get(column)
            if not run["peers"][column]["available"]:
                row.append("not installed")
            elif entry is None or entry.get("status") != "ok":
                row.append((entry or {}).get("status", "—").upper())
            else:
                row.append(fmt_cell(entry["median_ms"], flops, entry))
        if has_limit:
            row.append(fmt_cell(cell[LIMIT]["median_ms"], flops) if LIMIT in cell else "—")
        ratio = cell["ratio"]
        if ratio is None:
            row.append("—")
        else:
            row.append(
                f"{ratio:.2f}× vs {labels[cell['best_peer']]}"
                + (" (bptt slower)" if ratio < 1 else "")
                + (f"; minima {cell['ratio_of_minima']:.2f}×" if "ratio_of_minima" in cell else "")
            )
        if has_limit:
            fraction = cell["limit_fraction"]
            row.append("—" if fraction is None else f"{100 * fraction:.0f}%")
        row.append(target_text(name, n, cell))
        row.append(
            f"{cell['others_cpus']:.2f}"
            + (f" (+{cell['steal_cpus']:.2f} stolen)" if cell["steal_cpus"] > 0.05 else "")
        )
        lines.append("| " + " | ".join(row) + " |")
    return lines


def target_text(name: str, threads: int, cell: dict) -> str:
    if cell["ratio"] is None:
        return "—"
    goals = []
    if threads == 1:
        goals.append((cell["ratio"] >= 1.0, "≥ 1× every peer"))
    elif name in TARGET_RATIOS:
        goals.append((cell["ratio"] >= TARGET_RATIOS[name], f"≥ {TARGET_RATIOS[name]:g}×"))
    if threads > 1 and name in TARGET_LIMIT_FRACTION and cell["limit_fraction"] is not None:
        goal = TARGET_LIMIT_FRACTION[name]
        goals.append((cell["limit_fraction"] >= goal, f"≥ {100 * goal:.0f}% of limit"))
    return ", ".join(f"{text} {'met' if met else 'MISSED'}" for met, text in goals) or "—"


def memory_table(memory: dict, labels: dict) -> list[str]:
    impls = [peers.SUBJECT, *(p for p in peers.PEERS if p in labels)]
    header = [
        "problem",
        "bptt",
        "bptt's bound: activations + work buffer",
        "outputs (gradients)",
        "bptt beyond bound and outputs, in per-step vectors (B·H)",
        *(labels[p] for p in impls[1:]),
    ]
    lines = [
        f"### Peak extra memory, MiB ({plural(memory['threads'], 'thread')})",
        "",
        f"Method: {MEMORY_METHOD}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, by_impl in memory["cells"].items():
        T, B, D, H, O = STANDARD_SIZES[name.removesuffix("-tokens")]
        tokens = name.endswith("-tokens")
        bound = 4 * ((T + 1) * B * H + T * B * max(H, O))
        outputs = 4 * (H * D + H * H + H + O * H + O + B * H + (0 if tokens else T * B * D))
        peak = by_impl.get("bptt", {}).get("peak_extra_bytes")
        if peak is None:
            beyond = "—"
        elif peak <= bound + outputs:
            beyond = "none"
        else:
            beyond = f"{fmt_bytes(peak - bound - outputs)} = {(peak - bound - outputs) / (4 * B * H):.1f}"
        row = [name, fmt_bytes(peak), fmt_bytes(bound), fmt_bytes(outputs), beyond]
        for impl in impls[1:]:
            entry = by_impl.get(impl, {})
            text = fmt_bytes(entry.get("peak_extra_bytes"))
            if "tracemalloc_peak_bytes" in entry:
                text += f" (tracemalloc {fmt_bytes(entry['tracemalloc_peak_bytes'])})"
            row.append(text)
        lines.append("| " + " | ".join(row) + " |")
    return lines


def report_markdown(report: dict) -> str:
    machine = report["machine"]
    labels = {peers.SUBJECT: "bptt"}
    notes = []
    for run in report["runs"]:
        for name, peer in run["peers"].items():
            labels[name] = peers.load(name).NAME
            if not peer["available"]:
                notes.append(
                    f"{name} skipped at {plural(run['threads'], 'thread')}: {peer['note']}"
                )
        for problem, cell in run["cells"].items():
            for name, entry in cell["peers"].items():
                if entry.get("status") not in (None, "ok"):
                    notes.append(
                        f"{name} at {problem}, {plural(run['threads'], 'thread')}: "
                        f"{entry['status']}: {entry.get('note', '')}"
                    )
                elif entry.get("cpu_per_wall", 0) > run["threads"] + 0.3:
                    notes.append(
                        f"{name} at {problem} kept {entry['cpu_per_wall']:.1f} CPUs busy "
                        f"with {plural(run['threads'], 'thread')} asked"
                    )
    blas = "; ".join(
        f"{p.get('internal_api', '?')} {p.get('version', '')} "
        f"({p.get('architecture', '')}, {p.get('threading_layer', '')})"
        for p in machine["numpy_blas"]
        if p.get("user_api", "blas") == "blas"
    )
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    build = machine["bptt_build_info"]
    source = machine.get("bptt_source", {})
    xla_threads = (
        ", ".join(
            f"{plural(run['threads'], 'thread')}: {run['peers']['jax']['versions']['xla_pool_threads']}"
            for run in report["runs"]
            if run["peers"].get("jax", {}).get("available")
        )
        or "jax not run"
    )
    tuning = ", ".join(machine["openblas_tuning_set"]) or "neither"
    load_start, load_end = (
        " ".join(f"{v:.2f}" for v in machine.get(key) or ())
        for key in ("load_average_start", "load_average_end")
    )
    lines = [
        f"# bptt peer comparison: {report['label']} ({report['timestamp']})",
        "",
        (
            f"- Machine: {machine['cpu_model']}, {machine['logical_cpus']} logical CPUs; "
            f"{machine['platform']}; Python {machine['python']}"
        ),
        f"- Versions: {versions}",
        f"- Source: commit {source.get('commit')}"
        + (", core sources changed since" if source.get("core_sources_changed") else ""),
        (
            f"- bptt kernel: {build.get('instruction_set')} ({build.get('compiler')}, Eigen "
            f"{build.get('eigen_version')}, OpenMP {build.get('openmp')})"
        ),
        f"- NumPy's BLAS: {blas}",
        f"- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE set: {tuning}",
        (
            f"- Load average at start / end: {load_start} / {load_end}; niceness "
            f"{machine.get('niceness')}"
        ),
        f"- Command: `{report['command']}`",
        "",
        (
            "Forward+backward: the loss and every gradient bptt returns (U, W, b, V, c, h0, and x "
            'for float inputs), float32, integer targets, reduction "sum". Median of repeats '
            "after warm-up, all implementations interleaved in rounds in one process per thread "
            "count."
        ),
        (
            f"FLOP count: {gemm_limit.FLOP_RULE}. GEMM limit: the sum of the medians of those "
            "products timed alone with NumPy's BLAS at the same thread count (per-step products "
            "times T); limit ÷ bptt is the fraction of it bptt reaches. Ratio: the best peer's "
            f"median ÷ bptt's median (above 1: bptt faster). {TOKENS_NOTE}. JAX's thread count: "
            "XLA's pool is created while the process may run on n CPUs only (XLA sizes it from "
            f'them), and XLA_FLAGS="{XLA_ONE_THREAD}" at 1 thread, which alone leaves jax 0.10 '
            f"a pool thread per core; pool threads seen: {xla_threads}."
        ),
        "",
    ]
    for run in report["runs"]:
        lines += [*threads_table(run, labels), ""]
    if report.get("memory"):
        lines += [*memory_table(report["memory"], labels), ""]
    if notes:
        lines += ["### Notes", "", *(f"- {note}" for note in dict.fromkeys(notes)), ""]
    return "\n".join(lines)


def plot(report: dict, path: Path) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed: no chart"
    runs = report["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.5), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        problems = list(run["cells"])
        names = [p for p in peers.PEERS if run["peers"].get(p, {}).get("available")]
        width = 0.8 / max(len(names), 1)
        for index, name in enumerate(names):
            ratios = []
            for problem in problems:
                entry = run["cells"][problem]["peers"].get(name, {})
                ok = entry.get("status") == "ok"
                bptt_ms = run["cells"][problem]["bptt"]["median_ms"]
                ratios.append(entry["median_ms"] / bptt_ms if ok else np.nan)
            xs = np.arange(len(problems)) + (index - (len(names) - 1) / 2) * width
            ax.bar(xs, ratios, width, label=run["peers"][name]["label"])
        if run["threads"] > 1:
            targets = [TARGET_RATIOS.get(p, np.nan) for p in problems]
            ax.scatter(
                np.arange(len(problems)),
                targets,
                marker="_",
                s=400,
                color="black",
                zorder=3,
                label="target (best peer)",
            )
        ax.axhline(1.0, color="grey", linewidth=1)
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.set_xticks(np.arange(len(problems)), problems, rotation=30, ha="right")
        ax.set_ylabel("peer's median ÷ bptt's median (above 1: bptt faster)")
        ax.set_title(plural(run["threads"], "thread"))
        ax.legend(fontsize=8)
    fig.suptitle(f"bptt against its peers, forward+backward, float32 ({report['label']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def peer_ratios(cell: dict) -> dict:
    """Each timed peer's median ÷ bptt's median."""
    bptt_ms = cell["bptt"]["median_ms"]
    return {
        name: entry["median_ms"] / bptt_ms
        for name, entry in cell["peers"].items()
        if entry.get("status") == "ok" and "median_ms" in entry
    }


def compare_text(report: dict, previous_path: Path) -> str:
    """The change of every ratio against a previous run: per peer, so that a peer missing from one
    run does not pass for a change of bptt's speed."""
    path = previous_path / "results.json" if previous_path.is_dir() else previous_path
    previous = json.loads(path.read_text())
    old_runs = {run["threads"]: run for run in previous["runs"]}
    names = [p for p in peers.PEERS if any(p in run["peers"] for run in report["runs"])]
    labels = [peers.load(name).NAME for name in names]
    lines = [
        (
            f"Against {path} ({previous.get('timestamp')}): peer's median ÷ bptt's median, "
            "before → now (change)"
        ),
        "",
        "| threads | problem | bptt ms before → now | " + " | ".join(labels) + " |",
        "|---|---|---|" + "---|" * len(labels),
    ]
    for run in report["runs"]:
        old = old_runs.get(run["threads"], {})
        for problem, cell in run["cells"].items():
            old_cell = old.get("cells", {}).get(problem)
            if old_cell is None:
                continue
            before, now = peer_ratios(old_cell), peer_ratios(cell)
            row = [
                str(run["threads"]),
                problem,
                f"{fmt_ms(old_cell['bptt']['median_ms'])} → {fmt_ms(cell['bptt']['median_ms'])}",
            ]
            for name in names:
                if name in before and name in now:
                    row.append(
                        f"{before[name]:.2f} → {now[name]:.2f} ({now[name] / before[name]:.2f}×)"
                    )
                else:
                    row.append("—")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- main


def render(path: Path, no_plot: bool) -> None:
    folder = path if path.is_dir() else path.parent
    report = json.loads((folder / "results.json").read_text())
    for run in report["runs"]:
        derive(run)
    markdown = report_markdown(report)
    (folder / "results.md").write_text(markdown + "\n")
    note = None if no_plot else plot(report, folder / "ratios.png")
    print(markdown if not note else f"{markdown}\nnote: {note}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"CI smoke mode: {', '.join(QUICK_PROBLEMS)}, few repeats",
    )
    parser.add_argument(
        "--sizes", help=f"comma-separated, from {', '.join(PROBLEMS)} (default all)"
    )
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument(
        "--peers",
        default="oracle,torch,jax,limit",
        help="comma-separated, from oracle, torch, jax, limit (the GEMM limit)",
    )
    parser.add_argument(
        "--budget", type=float, help="seconds of timed calls per cell (default 1, quick 0.05)"
    )
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3, quick 1)")
    parser.add_argument(
        "--settle",
        type=float,
        default=0.1,
        help="seconds to sleep before switching library (default 0.1)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="before each size, wait up to this long for other processes to leave the CPUs idle "
        "(a shared machine); default 0",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--no-plot", action="store_true", help="no PNG chart")
    parser.add_argument("--no-save", action="store_true", help="print only, write no files")
    parser.add_argument(
        "--out", type=Path, default=HERE / "results", help="results folder (default bench/results)"
    )
    parser.add_argument(
        "--label",
        help="name of this run's folder after its timestamp "
        "(default full or quick); never a host name",
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="PATH",
        help="re-write the Markdown and the chart of a recorded results.json (or its folder), "
        "without measuring",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="PATH",
        help="a previous results.json (or its folder): print the ratio changes",
    )
    # Internal: the children.
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--memory-impl", help=argparse.SUPPRESS)
    parser.add_argument("--memory-problem", help=argparse.SUPPRESS)
    parser.add_argument("--problem-list", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.min_repeats = 3 if args.quick else 5
    args.max_repeats = 20 if args.quick else 10000
    args.budget = args.budget if args.budget is not None else (0.05 if args.quick else 1.0)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if args.quick:
        args.settle = min(args.settle, 0.02)
    if args.problem_list:
        args.problem_list = args.problem_list.split(",")
    elif args.sizes:
        args.problem_list = [s.strip() for s in args.sizes.split(",") if s.strip()]
    else:
        args.problem_list = QUICK_PROBLEMS if args.quick else PROBLEMS
    unknown = [p for p in args.problem_list if p not in PROBLEMS]
    if unknown:
        parser.error(
            f"--sizes: unknown {', '.join(unknown)}; expected some of {', '.join(PROBLEMS)}"
        )
    args.peer_list = [p.strip() for p in args.peers.split(",") if p.strip()]
    unknown = [p for p in args.peer_list if p not in (*peers.PEERS, LIMIT)]
    if unknown:
        parser.error(
            f"--peers: unknown {', '.join(unknown)}; expected some of oracle, torch, jax, limit"
        )
    args.thread_list = [int(t) for t in args.threads.split(",")]
    if any(t < 1 for t in args.thread_list):
        parser.error(f"--threads: expected integers >= 1, got {args.threads}")
    return args


def child_arguments(args) -> list[str]:
    return [
        "--problem-list",
        ",".join(args.problem_list),
        "--peers",
        ",".join(args.peer_list),
        "--budget",
        str(args.budget),
        "--rounds",
        str(args.rounds),
        "--settle",
        str(args.settle),
        "--wait-quiet",
        str(args.wait_quiet),
        *(["--quick"] if args.quick else []),
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_impl:
        run_memory_child(args)
        return 0
    if args.child_threads:
        run_child(args)
        return 0
    if args.render:
        render(args.render, args.no_plot)
        return 0
    started = time.time()
    machine = machine_description()
    if machine["openblas_tuning_set"]:
        print(
            f"note: {', '.join(machine['openblas_tuning_set'])} set: NumPy's BLAS (the oracle "
            "and the GEMM limit) may not run its best kernels; for a recorded run use "
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py",
            file=sys.stderr,
        )
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    label = args.label or ("quick" if args.quick else "full")
    report = {
        "schema": 1,
        "label": label,
        "timestamp": timestamp,
        "command": " ".join(["python bench/compare.py", *(argv or sys.argv[1:])]),
        "machine": machine,
        "flop_rule": gemm_limit.FLOP_RULE,
        "tokens_note": TOKENS_NOTE,
        "loss_tolerance": LOSS_TOLERANCE,
        "grad_tolerance": GRAD_TOLERANCE,
        "problems": {
            name: {
                "shape": STANDARD_SIZES[name.removesuffix("-tokens")],
                "tokens": name.endswith("-tokens"),
                "flops": problem_flops(name),
            }
            for name in args.problem_list
        },
        "runs": [],
    }
    timeout = 1800 if not args.quick else 300
    for threads in args.thread_list:
        run = run_in_child(
            ["--child-threads", str(threads), *child_arguments(args)], child_env(threads), timeout
        )
        if run is None:
            return 1
        derive(run)
        report["runs"].append(run)
    if not args.no_memory:
        threads = max(args.thread_list)
        memory = {"threads": threads, "method": MEMORY_METHOD, "cells": {}}
        impls = [
            peers.SUBJECT,
            *(p for p in args.peer_list if p != LIMIT and not peers.load_note(p)),
        ]
        # --quick measures one size only: a fresh process per implementation costs its imports.
        for problem in args.problem_list[:1] if args.quick else args.problem_list:
            print(f"[memory] {problem}", file=sys.stderr, flush=True)
            memory["cells"][problem] = {}
            for impl in impls:
                result = run_in_child(
                    [
                        "--memory-impl",
                        impl,
                        "--memory-problem",
                        problem,
                        "--child-threads",
                        str(threads),
                    ],
                    child_env(threads, memory=True),
                    timeout=600,
                )
                if result is not None:
                    memory["cells"][problem][impl] = result
        report["memory"] = memory
    machine["load_average_end"] = os.getloadavg()
    report["elapsed_s"] = round(time.time() - started, 1)
    markdown = report_markdown(report)
    print(markdown)
    if args.compare:
        print(compare_text(report, args.compare))
    if not args.no_save:
        folder = args.out / f"{timestamp}-{label}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "results.json").write_text(json.dumps(report, indent=1) + "\n")
        (folder / "results.md").write_text(markdown + "\n")
        note = None if args.no_plot else plot(report, folder / "ratios.png")
        if note:
            print(f"note: {note}", file=sys.stderr)
        shutil.copyfile(folder / "results.md", args.out / "latest.md")
        shutil.copyfile(folder / "results.json", args.out / "latest.json")
        print(f"\nwritten: {folder} (and {args.out / 'latest.md'})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
