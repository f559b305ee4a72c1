"""The parent: a timing child per thread count, a memory child per implementation and problem,
then the report printed, compared with a previous run if asked, and recorded."""

import datetime
import os
import sys
import time

import gemm_limit
import peers

from . import records
from .agreement import GRAD_TOLERANCE, LOSS_TOLERANCE
from .children import child_arguments, child_env, run_in_child
from .diff import ratio_changes
from .machine import machine_description
from .markdown import report_markdown
from .memory_child import MEMORY_METHOD
from .problem import TOKENS_NOTE, problem_flops, problem_shape, size_and_tokens
from .ratios import derive


def new_report(args, argv: list[str], machine: dict) -> dict:
    """The report before any measurement: what is run, where and how."""
    timestamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
    return {
        "schema": 1,
        "label": args.label or ("quick" if args.quick else "full"),
        "timestamp": timestamp,
        "command": " ".join(["python bench/compare.py", *argv]),
        "machine": machine,
        "flop_rule": gemm_limit.FLOP_RULE,
        "tokens_note": TOKENS_NOTE,
        "loss_tolerance": LOSS_TOLERANCE,
        "grad_tolerance": GRAD_TOLERANCE,
        "problems": {
            name: {
                "shape": problem_shape(name),
                "tokens": size_and_tokens(name)[1],
                "flops": problem_flops(name),
            }
            for name in args.problem_list
        },
        "runs": [],
    }


def measure_memory(args) -> dict:
    """Peak extra memory of every implementation that can run here, at the largest thread count,
    each problem in a fresh process per implementation."""
    threads = max(args.thread_list)
    memory = {"threads": threads, "method": MEMORY_METHOD, "cells": {}}
    impls = [
        peers.SUBJECT,
        *(p for p in args.peer_list if p in peers.PEERS and not peers.load_note(p)),
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
    return memory


def run(args, argv: list[str]) -> int:
    """The whole comparison; 1 when a timing child failed."""
    started = time.time()
    machine = machine_description()
    if machine["openblas_tuning_set"]:
        print(
            f"note: {', '.join(machine['openblas_tuning_set'])} set: NumPy's BLAS (the oracle "
            "and the GEMM limit) may not run its best kernels; for a recorded run use "
            "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/compare.py",
            file=sys.stderr,
        )
    report = new_report(args, argv, machine)
    timeout = 1800 if not args.quick else 300
    for threads in args.thread_list:
        measured = run_in_child(
            ["--child-threads", str(threads), *child_arguments(args)], child_env(threads), timeout
        )
        if measured is None:
            return 1
        derive(measured)
        report["runs"].append(measured)
    if not args.no_memory:
        report["memory"] = measure_memory(args)
    machine["load_average_end"] = os.getloadavg()
    report["elapsed_s"] = round(time.time() - started, 1)
    markdown = report_markdown(report)
    print(markdown)
    if args.compare:
        previous = records.record_path(args.compare)
        print(ratio_changes(report, records.load(previous), str(previous)))
    if not args.no_save:
        folder, note = records.save(
            report, markdown, args.out, chart=not args.no_plot, latest=args.whole_run
        )
        if note:
            print(f"note: {note}", file=sys.stderr)
        latest = args.out / f"{records.LATEST}.md"
        also = f" (and {latest})" if args.whole_run else " (a part of a run: not latest.*)"
        print(f"\nwritten: {folder}{also}", file=sys.stderr)
    return 0
