"""A cell's runner: bptt under a memory budget (or none), a peer as it is (torch, jax) or with
its activation checkpointing over segments of the sequence."""

import peers

from .cases import cell_key


def make_runner(cell: dict, problem):
    """The runner of a cell {impl, memory_budget (bptt), segment (a peer)} on the problem."""
    impl, budget, segment = cell["impl"], cell.get("memory_budget"), cell.get("segment")
    if impl == peers.SUBJECT:
        return peers.load(impl).Runner(problem, memory_budget=budget)
    if segment is None:
        return peers.load(impl).Runner(problem)
    return peers.load_checkpointed(impl).Runner(problem, segment)


def set_threads(impls, threads: int) -> dict:
    """Each implementation's library set to `threads` (once per process); their versions."""
    versions = {}
    for impl in dict.fromkeys(impls):
        module = peers.load(impl)
        module.set_threads(threads)
        versions[impl] = module.versions()
    return versions


def cell(impl: str, memory_budget: int | None = None, segment: int | None = None) -> dict:
    """A cell of a job: what to run, and its key."""
    return {
        "key": cell_key(impl, memory_budget, segment),
        "impl": impl,
        "memory_budget": memory_budget,
        "segment": segment,
    }
