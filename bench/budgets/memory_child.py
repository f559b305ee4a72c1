"""The memory child, a fresh process per measurement: the working memory of one call of one
cell (bptt under a budget, or a peer's configuration), everything it allocates beyond its
inputs and the arrays it returns."""

# ruff: noqa: RUF003  (× is the shapes' symbol)

from comparison.memory_child import MALLOC_ENV, peak_growth

from .cases import Case
from .runners import make_runner, set_threads

METHOD = (
    "working memory = peak resident-set growth across one call (VmHWM after it, reset through "
    "/proc/self/clear_refs before it, minus VmRSS before it) minus the bytes of the arrays the "
    "call returns (the gradients, and bptt's h_last), in a fresh process per measurement, after "
    "one warm-up call of the same cell whose result is dropped, and with the memory bptt keeps "
    "between calls (its scratch, bptt.release_scratch()) freed so that the call allocates it; "
    "glibc malloc told to return freed blocks ("
    + ", ".join(f"{name}={value}" for name, value in MALLOC_ENV.items())
    + ")"
)


def run(job: dict) -> dict:
    """The working memory of the job's cell on its case, at its thread count."""
    case = Case(job["case"]["name"], tuple(job["case"]["shape"]), job["case"]["tokens"])
    cell = job["cell"]
    set_threads([cell["impl"]], job["threads"])
    runner = make_runner(cell, case.problem())
    runner()  # warm-up: JIT compilation, thread pools, the library's first touch of its code
    growth = peak_growth(runner)
    outputs = runner.output_bytes()
    return {
        **growth,
        "output_bytes": outputs,
        "working_bytes": growth["peak_extra_bytes"] - outputs,
    }
