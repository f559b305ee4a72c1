"""The parent: the memory children of each case (bptt at every budget, each peer at every segment
length), each peer matched to bptt's memory at every budget, then a timing child per case and
thread count; the report printed and recorded."""

import dataclasses
import datetime
import json
import os
import sys
import time
from pathlib import Path

import peers
from comparison.children import child_env, run_in_child
from comparison.machine import machine_description
from comparison.timing import measure_options

import bptt

from . import records
from .cases import Case, budget_rows, cases, segment_lengths
from .markdown import report_markdown
from .matching import matched_configuration
from .memory_child import METHOD
from .runners import cell

ENTRY = Path(__file__).resolve().parents[1] / "memory_budget.py"
TIMEOUT_S = 3600  # the long case's timing child at one thread takes minutes


def in_child(job: dict, threads: int, memory: bool) -> dict | None:
    """A child's answer to the job (a memory or timing child), None when it failed."""
    env = child_env(threads, memory=memory)
    return run_in_child(["--child-job", json.dumps(job)], env, TIMEOUT_S, entry=ENTRY)


def working_memory(case: Case, measured: dict, threads: int) -> dict | None:
    """The working memory of one call of a cell, measured in a fresh process."""
    job = {"kind": "memory", "case": dataclasses.asdict(case), "cell": measured}
    return in_child({**job, "threads": threads}, threads, memory=True)


def timings(case: Case, cells: list[dict], threads: int, args) -> dict | None:
    """Every cell checked and timed in interleaved rounds, in one process."""
    job = {
        "kind": "timing",
        "case": dataclasses.asdict(case),
        "cells": cells,
        "threads": threads,
        "measure": measure_options(args),
        "wait_quiet": args.wait_quiet,
    }
    return in_child(job, threads, memory=False)


def plan(case: Case, memory_budget: int | None = None) -> dict:
    """bptt.memory_plan of the case at this process's thread count, as a dict."""
    return bptt.memory_plan(*case.shape, tokens=case.tokens, memory_budget=memory_budget)._asdict()


def peer_curve(case: Case, peer: str, segments: list[int], threads: int) -> list[dict]:
    """The peer's working memory unbudgeted and at each segment length."""
    curve = []
    for segment in [None, *segments]:
        print(f"[memory] {case.name}: {peer}, segments of {segment}", file=sys.stderr, flush=True)
        measured = working_memory(case, cell(peer, segment=segment), threads)
        curve.append({"segment": segment, "working_bytes": measured and measured["working_bytes"]})
    return curve


def dense_case(case: Case, args) -> dict:
    """Size 1: bptt at each share of the states' bytes, each peer at about equal memory."""
    threads = args.memory_threads or max(args.thread_list)
    bptt.set_num_threads(threads)
    unbudgeted = plan(case)
    rows = budget_rows(case.states_bytes(), unbudgeted["minimum_bytes"])
    print(f"[memory] {case.name}: bptt", file=sys.stderr, flush=True)
    record = {
        "case": dataclasses.asdict(case),
        "states_bytes": case.states_bytes(),
        "memory_threads": threads,
        "unbudgeted": {"plan": unbudgeted, "memory": working_memory(case, cell("bptt"), threads)},
        "rows": rows,
        "peers": {},
    }
    runnable = [row for row in rows if not row["below_minimum"]]
    for row in runnable:
        row["plan"] = plan(case, row["budget_bytes"])
        row["memory"] = working_memory(case, cell("bptt", row["budget_bytes"]), threads)
        row["peers"] = {}
    cells = [cell("bptt"), *(cell("bptt", row["budget_bytes"]) for row in runnable)]
    segments = args.segment_list or segment_lengths(case.shape[0], args.quick)
    for peer in args.peer_list:
        note = peers.load_note(peer)
        if note:
            record["peers"][peer] = {"available": False, "note": note}
            continue
        curve = peer_curve(case, peer, segments, threads)
        record["peers"][peer] = {"available": True, "curve": curve}
        chosen = []
        for row in runnable:
            if row["memory"] is not None:
                row["peers"][peer] = matched_configuration(curve, row["memory"]["working_bytes"])
                chosen.append(row["peers"][peer]["segment"])
        cells += [cell(peer)]
        cells += [cell(peer, segment=s) for s in dict.fromkeys(chosen) if s is not None]
    record["timing"] = {str(n): timings(case, cells, n, args) for n in args.thread_list}
    return record


def long_case(case: Case, budget: int, args) -> dict:
    """Size 2: bptt under the budget against unbudgeted, memory and time, at each thread count
    (the unbudgeted plan differs: two threads pipeline through a larger work buffer)."""
    record = {
        "case": dataclasses.asdict(case),
        "states_bytes": case.states_bytes(),
        "budget_bytes": budget,
        "threads": {},
    }
    for threads in args.thread_list:
        bptt.set_num_threads(threads)
        entry = {"plans": {"unbudgeted": plan(case), "budgeted": plan(case, budget)}}
        print(f"[memory] {case.name}: bptt, {threads} thread(s)", file=sys.stderr, flush=True)
        entry["memory"] = {
            "unbudgeted": working_memory(case, cell("bptt"), threads),
            "budgeted": working_memory(case, cell("bptt", budget), threads),
        }
        entry["timing"] = timings(case, [cell("bptt"), cell("bptt", budget)], threads, args)
        record["threads"][str(threads)] = entry
    return record


def run(args, argv: list[str]) -> int:
    """Both cases (or those asked), reported and recorded; 1 when a timing child failed."""
    started = time.time()
    dense, long, long_budget = cases(args.quick)
    report = {
        "schema": 1,
        "label": args.label or ("quick" if args.quick else "full"),
        "timestamp": datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S"),
        "command": " ".join(["python bench/memory_budget.py", *argv]),
        "machine": machine_description(),
        "memory_method": METHOD,
        "threads": args.thread_list,
    }
    if "dense" in args.case_list:
        report["dense"] = dense_case(dense, args)
    if "long" in args.case_list:
        report["long"] = long_case(long, long_budget, args)
    report["machine"]["load_average_end"] = os.getloadavg()
    report["elapsed_s"] = round(time.time() - started, 1)
    markdown = report_markdown(report)
    print(markdown)
    if not args.no_save:
        folder = records.save(report, markdown, args.out)
        print(f"\nwritten: {folder}", file=sys.stderr)
    failed = [
        name
        for name in ("dense", "long")
        if name in report and not all(timing_records(report[name]))
    ]
    return 1 if failed else 0


def timing_records(case_record: dict) -> list:
    """A case's timing children's records (None where one failed)."""
    if "timing" in case_record:
        return list(case_record["timing"].values())
    return [entry["timing"] for entry in case_record["threads"].values()]
