"""The timing child, one process per thread count: every peer checked against bptt on each
problem, then all of them timed in interleaved rounds, with the GEMM limit's products and the
sequential chain beside, then the recurrent layer alone against the layer peers; and the machine's
peak sgemm rate before and after."""

import gc
import json
import os
import sys
from pathlib import Path

import gemm_limit
import peers

from . import layer
from .agreement import mismatch_note, relative_errors
from .machine import blas_info
from .markdown import plural
from .problem import Problem, size_and_tokens
from .timing import OtherLoad, measure, measure_options, wait_until_quiet


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
        try:
            module.set_threads(threads)  # the oneDNN peer is compiled here, on first use
            versions = module.versions()
        except Exception as error:  # noqa: BLE001 (a peer failing here is reported, not fatal)
            records[name] = {"available": False, "note": f"{type(error).__name__}: {error}"}
            continue
        modules[name] = module
        records[name] = {"available": True, "label": module.NAME, "versions": versions}
    return modules, records


def checked_runner(make_runner, problem: Problem, ref_loss: float, ref_grads: dict):
    """A peer's runner, make_runner(problem) (a peer module's Runner), and its record: status
    "ok" (then the runner is returned for timing), "error" or "mismatch" (then None)."""
    entry = {}
    try:
        runner = make_runner(problem)
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
        entry, runner = checked_runner(module.Runner, problem, ref_loss, ref_grads)
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
        T, B, _, H, _ = problem.shape
        cells[gemm_limit.SEQUENTIAL_KEY] = (gemm_limit.sequential_chain_call(T, B, H), 1.0, True)
    if args.wait_quiet:
        record["waited_s"] = wait_until_quiet(args.wait_quiet)
    with OtherLoad() as load:
        timings = measure(cells, **measure_options(args))
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
        record[gemm_limit.SEQUENTIAL_KEY] = {
            "products": 2 * problem.shape[0],
            **timings[gemm_limit.SEQUENTIAL_KEY],
        }
    return record


def peak_sgemm(args, earlier: dict | None = None) -> dict:
    """NumPy's BLAS on the large square product at this process's thread count, measured again
    after `earlier`: the rate of the fastest call of all, since a limit is what the machine can
    do and other processes only ever slow a call down; each measurement kept."""
    if args.wait_quiet:
        wait_until_quiet(args.wait_quiet)
    product = gemm_limit.peak_sgemm_product()
    cells = {"peak": (gemm_limit.product_call(product), 1.0, True)}
    with OtherLoad() as load:
        timing = measure(cells, **measure_options(args))["peak"]
    timing["others_cpus"] = load.others_cpus
    measurements = [*(earlier or {}).get("measurements", []), timing]
    fastest_ms = min(m["min_ms"] for m in measurements)
    return {
        "n": product.m,
        "gflops": product.flops / fastest_ms / 1e6,
        "measurements": measurements,
    }


def run(args) -> None:
    """One thread count: check every peer against bptt, then time all of them, size by size."""
    loss_peers = [p for p in args.peer_list if p in peers.PEERS]
    layer_peers = [p for p in args.peer_list if p in peers.LAYER_PEERS]
    modules, records = load_implementations(
        [peers.SUBJECT, *loss_peers, *layer_peers], args.child_threads
    )
    loss_modules = {n: modules[n] for n in (peers.SUBJECT, *loss_peers) if n in modules}
    layer_modules = {n: modules[n] for n in layer_peers if n in modules}
    info = {
        "threads": args.child_threads,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "peers": records,
        "cells": {},
    }
    info["blas"] = blas_info()
    if gemm_limit.KEY in args.peer_list:
        info[gemm_limit.PEAK_KEY] = peak_sgemm(args)
    for problem_name in args.problem_list:
        cell = time_problem(problem_name, loss_modules, args)
        # oneDNN's primitive takes float inputs only: the layer is compared on those problems.
        if layer_modules and not size_and_tokens(problem_name)[1]:
            cell[layer.KEY] = layer.time_layer(
                problem_name, modules[peers.SUBJECT], layer_modules, args
            )
        info["cells"][problem_name] = cell
        gc.collect()  # the problem's arrays and runners, before the next size
    if gemm_limit.PEAK_KEY in info:  # once more, at another moment of the machine's load
        info[gemm_limit.PEAK_KEY] = peak_sgemm(args, info[gemm_limit.PEAK_KEY])
    Path(args.child_out).write_text(json.dumps(info, indent=1))
