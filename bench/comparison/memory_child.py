"""The memory child, a fresh process per implementation and problem: the peak extra memory of
one call."""

# ruff: noqa: RUF001, RUF003  (× is the shapes' symbol)

import gc
import json
import resource
from pathlib import Path

import peers

from .problem import Problem

# glibc's malloc told to return freed blocks, so that the resident set follows what is held.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}
MEMORY_METHOD = (
    "peak resident set growth across one call in a fresh process per implementation and size, "
    "after one warm-up call (JIT compilation, thread pools) and with its result dropped (and "
    "bptt's scratch and the memory of its freed results, which it keeps between calls, freed, so "
    "that the call allocates them): VmHWM after the call, reset through /proc/self/clear_refs "
    "before it, minus VmRSS before it (glibc malloc told to return freed blocks: "
    + ", ".join(f"{name}={value}" for name, value in MALLOC_ENV.items())
    + "); the outputs (gradients) are included, as far as they grow the resident set (below "
    "about a MiB, allocations served from heap pages already resident do not: lower bounds "
    "there); the NumPy oracle also by tracemalloc's peak "
    "(NumPy arrays only). Besides the states, bptt holds, none of it growing with T: with one "
    "thread for the recurrence, logits and dO in (T·B)×O and dL/da in a ring of two chunks of "
    "about 128 rows; in the two-thread pipeline, the (T·B)×max(H, O) work buffer and 16 rows "
    "of Vᵀ·dO staged; W laid out once for the per-step products (H·H, i.e. H/B per-step "
    "vectors); and the cache-sized packing blocks of Eigen's matrix products"
)


def rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_growth(runner) -> dict:
    """The peak resident-set growth across one more call of a warmed-up runner, its last result
    dropped and the memory it keeps between calls freed first: {peak_extra_bytes, method}."""
    runner.release()
    if hasattr(runner, "release_kept_memory"):  # bptt's scratch, kept between calls
        runner.release_kept_memory()
    gc.collect()
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS
        before = rss_kib("VmRSS")
        runner()
        return {"peak_extra_bytes": 1024 * (rss_kib("VmHWM") - before), "method": "VmHWM reset"}
    except OSError:  # no clear_refs: ru_maxrss growth, a lower bound when set-up peaked higher
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        runner()
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return {"peak_extra_bytes": 1024 * (after - before), "method": "ru_maxrss growth"}


def run(args) -> None:
    """Peak extra memory of one implementation on one problem, in this fresh process."""
    name, problem = args.memory_impl, Problem.make(args.memory_problem)
    module = peers.load(name)
    module.set_threads(args.child_threads)
    runner = module.Runner(problem)
    runner()  # warm-up: JIT compilation, allocator and thread pools
    result = peak_growth(runner)
    if name == "oracle":
        import tracemalloc

        runner.release()
        gc.collect()
        tracemalloc.start()
        runner()
        result["tracemalloc_peak_bytes"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    Path(args.child_out).write_text(json.dumps(result))
