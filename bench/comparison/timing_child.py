"""The timing child, one process per thread count: every peer checked against bptt on each
problem, then all of them timed in interleaved rounds, with the GEMM limit's products beside."""

# ruff: noqa: RUF003  (− is the maths' symbol)

import gc
import json
import math
import os
import sys
from pathlib import Path

import gemm_limit
import numpy as np
import peers

from .machine import blas_info
from .markdown import plural
from .problem import Problem
from .timing import OtherLoad, measure, wait_until_quiet

LOSS_TOLERANCE = 1e-4  # relative, float32: sums of T·B log-probabilities in a different order
# max |g_peer − g_bptt| / max |g_bptt| over each gradient: float32 rounding grows with the T-step
# chain and the T·B-row sums, so this is loose, yet a wrong formula is off by O(1).
GRAD_TOLERANCE = 1e-3


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


def mismatch_note(loss_error: float, grad_errors: dict) -> str | None:
    """Why a peer's result disagrees with bptt's, None when it agrees within the tolerances."""
    worst = max(grad_errors, key=grad_errors.get)
    if loss_error > LOSS_TOLERANCE or grad_errors[worst] > GRAD_TOLERANCE:
        return (
            f"loss relative error {loss_error:.1e} (tolerance {LOSS_TOLERANCE:.0e}), "
            f"worst gradient d{worst} {grad_errors[worst]:.1e} "
            f"(tolerance {GRAD_TOLERANCE:.0e}): not timed"
        )
    return None


def load_implementations(names: list[str], threads: int) -> tuple[dict, dict]:
    """The modules of the implementations that can run here, set to `threads`, and each one's
    record: its label and versions, or why it cannot run."""
    modules, records = {}, {}
    for name in names:
        note = peers.load_note(name)
        if note:
            records[name] = {"available": False, "note": note}
            continue
        module = peers.load(name)
        module.set_threads(threads)
        modules[name] = module
        records[name] = {"available": True, "label": module.NAME, "versions": module.versions()}
    return modules, records


def checked_runner(module, problem: Problem, ref_loss: float, ref_grads: dict):
    """A peer's runner on the problem and its record: status "ok" (then the runner is returned
    for timing), "error" or "mismatch" (then None)."""
    entry = {}
    try:
        runner = module.Runner(problem)
        runner()  # JIT compilation happens here, outside the timing
        loss, grads = runner.result()
    except Exception as error:  # noqa: BLE001 (a peer failing here is reported, not fatal)
        entry.update(status="error", note=f"{type(error).__name__}: {error}")
        return entry, None
    loss_error, grad_errors = relative_errors(loss, grads, ref_loss, ref_grads)
    entry.update(loss=loss, loss_rel_error=loss_error, grad_rel_errors=grad_errors)
    note = mismatch_note(loss_error, grad_errors)
    if note:
        entry.update(status="mismatch", note=note)
        return entry, None
    entry["status"] = "ok"
    return entry, runner


def time_problem(problem_name: str, modules: dict, args) -> dict:
    """One problem's record: bptt's loss, every peer's check, and the timings of all."""
    problem = Problem.make(problem_name)
    print(
        f"[{plural(args.child_threads, 'thread')}] {problem_name} {problem.shape}",
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
        entry, runner = checked_runner(module, problem, ref_loss, ref_grads)
        record["peers"][name] = entry
        if runner is None:
            if entry["status"] == "mismatch":
                print(f"  {name}: MISMATCH, {entry['note']}", file=sys.stderr, flush=True)
            continue
        cells[name] = (runner, 1.0, True)
    products = []
    if gemm_limit.KEY in args.peer_list:
        products = gemm_limit.products(*problem.shape, tokens=problem.tokens)
        share = 1.0 / len(products)
        for index, product in enumerate(products):
            call = gemm_limit.product_call(product)
            cells[f"{gemm_limit.KEY}:{index}"] = (call, share, index == 0)
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
        product_timings = [timings[f"{gemm_limit.KEY}:{i}"] for i in range(len(products))]
        record[gemm_limit.KEY] = {
            "median_ms": sum(
                p.count * t["median_ms"] for p, t in zip(products, product_timings, strict=True)
            ),
            "products": [
                {**p._asdict(), "flops": p.flops, **t}
                for p, t in zip(products, product_timings, strict=True)
            ],
        }
    return record


def run(args) -> None:
    """One thread count: check every peer against bptt, then time all of them, size by size."""
    names = [peers.SUBJECT, *(p for p in args.peer_list if p != gemm_limit.KEY)]
    modules, records = load_implementations(names, args.child_threads)
    info = {
        "threads": args.child_threads,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "peers": records,
        "cells": {},
    }
    info["blas"] = blas_info()
    for problem_name in args.problem_list:
        info["cells"][problem_name] = time_problem(problem_name, modules, args)
        gc.collect()  # the problem's arrays and runners, before the next size
    Path(args.child_out).write_text(json.dumps(info, indent=1))
