"""The timing child, one process per case and thread count: bptt unbudgeted gives the reference;
each budgeted call of bptt must give the same bits, each peer's configuration bptt's loss and
gradients within the comparison's tolerances; then every cell is timed in interleaved rounds."""

import os
import sys

import numpy as np
import peers
from comparison.timing import OtherLoad, measure, wait_until_quiet
from comparison.timing_child import checked_runner

import bptt

from .cases import Case
from .runners import make_runner, set_threads


def same_bits(result, reference) -> bool:
    """Whether two loss_and_grad results hold the same loss, gradients and h_last, bit for bit."""
    return (
        np.float64(result.loss).tobytes() == np.float64(reference.loss).tobytes()
        and result.grads.keys() == reference.grads.keys()
        and all(np.array_equal(result.grads[k], reference.grads[k]) for k in reference.grads)
        and np.array_equal(result.h_last, reference.h_last)
    )


def checked_cells(job: dict, problem) -> tuple[dict, dict]:
    """The runners to time by cell key, and each cell's record (its check; bptt's plan)."""
    T, B, D, H, O = problem.shape
    reference = make_runner({"impl": peers.SUBJECT}, problem)
    reference()
    ref_loss, ref_grads = reference.result()
    runners, records = {}, {}
    for cell in job["cells"]:
        key = cell["key"]
        if cell["impl"] == peers.SUBJECT:
            runner = make_runner(cell, problem)
            runner()
            plan = bptt.memory_plan(
                T, B, D, H, O, tokens=problem.tokens, memory_budget=cell["memory_budget"]
            )
            equal = same_bits(runner.last, reference.last)
            records[key] = {"status": "ok" if equal else "mismatch", "plan": plan._asdict()}
            if not equal:
                records[key]["note"] = "not the unbudgeted call's bits: not timed"
                continue
        else:
            records[key], runner = checked_runner(
                lambda problem, cell=cell: make_runner(cell, problem), problem, ref_loss, ref_grads
            )
            if runner is None:
                print(f"  {key}: {records[key]['status']}, {records[key]['note']}", file=sys.stderr)
                continue
        runners[key] = runner
    return runners, records


def run(job: dict) -> dict:
    """One case at one thread count: every cell checked, then all timed in interleaved rounds
    (a library's first cell settles first, as the peer comparison's do)."""
    case = Case(job["case"]["name"], tuple(job["case"]["shape"]), job["case"]["tokens"])
    threads = job["threads"]
    versions = set_threads([peers.SUBJECT, *(cell["impl"] for cell in job["cells"])], threads)
    print(f"[{case.name}, {threads} thread(s)] {case.shape}", file=sys.stderr, flush=True)
    runners, records = checked_cells(job, case.problem())
    cells, previous_impl = {}, None
    for cell in job["cells"]:
        if cell["key"] in runners:
            cells[cell["key"]] = (runners[cell["key"]], 1.0, cell["impl"] != previous_impl)
            previous_impl = cell["impl"]
    record = {"threads": threads, "xla_flags": os.environ.get("XLA_FLAGS", "")}
    if job["wait_quiet"]:
        record["waited_s"] = wait_until_quiet(job["wait_quiet"])
    with OtherLoad() as load:
        timings = measure(cells, **job["measure"])
    record.update(others_cpus=load.others_cpus, steal_cpus=load.steal_cpus, versions=versions)
    for key, timing in timings.items():
        records[key].update(timing)
    record["cells"] = records
    return record
