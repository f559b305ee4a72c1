"""bench/compare.py's options, and which of its programs runs: the parent (the comparison), a
timing or a memory child (internal options), or --render of a recorded run."""

import argparse
import sys
from pathlib import Path

import gemm_limit
import peers

from . import __doc__ as DESCRIPTION
from . import memory_child, records, timing_child
from .problem import PROBLEMS, QUICK_PROBLEMS
from .run import run

RESULTS_FOLDER = Path(__file__).resolve().parents[1] / "results"
PEER_NAMES = (*peers.PEERS, *peers.LAYER_PEERS, gemm_limit.KEY)
PEER_OPTIONS = ", ".join(PEER_NAMES)


def comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def option_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
        default=",".join(PEER_NAMES),
        help=f"comma-separated, from {PEER_OPTIONS} (the machine's limits); "
        f"{', '.join(peers.LAYER_PEERS)}: the recurrent layer alone",
    )
    add_timing_options(parser, "size")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory children")
    parser.add_argument("--no-plot", action="store_true", help="no PNG chart")
    parser.add_argument("--no-save", action="store_true", help="print only, write no files")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_FOLDER,
        help="results folder (default bench/results)",
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
        help="re-write the Markdown and the chart of a recorded results.json or latest.json (or "
        "a run's folder) beside it, without measuring",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="PATH",
        help="a previous results.json or latest.json (or a run's folder): print the ratio changes",
    )
    # Internal: the children.
    parser.add_argument("--child-threads", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--memory-impl", help=argparse.SUPPRESS)
    parser.add_argument("--memory-problem", help=argparse.SUPPRESS)
    parser.add_argument("--problem-list", help=argparse.SUPPRESS)
    return parser


def add_timing_options(parser: argparse.ArgumentParser, unit: str) -> None:
    """--budget, --rounds, --settle and --wait-quiet (before each `unit` measured)."""
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
        help=f"before each {unit}, wait up to this long for other processes to leave the CPUs "
        "idle (a shared machine); default 0",
    )


def fill_timing_defaults(args: argparse.Namespace) -> None:
    """The timing options' defaults, which depend on --quick, and the repeat counts."""
    args.min_repeats = 3 if args.quick else 5
    args.max_repeats = 20 if args.quick else 10000
    args.budget = args.budget if args.budget is not None else (0.05 if args.quick else 1.0)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    if args.quick:
        args.settle = min(args.settle, 0.02)


def parse_args(argv=None) -> argparse.Namespace:
    """The options, checked, with the defaults that depend on --quick filled in."""
    options = option_parser()
    args = options.parse_args(argv)
    fill_timing_defaults(args)
    if args.problem_list:
        args.problem_list = args.problem_list.split(",")
    elif args.sizes:
        args.problem_list = comma_list(args.sizes)
    else:
        args.problem_list = QUICK_PROBLEMS if args.quick else PROBLEMS
    unknown = [p for p in args.problem_list if p not in PROBLEMS]
    if unknown:
        options.error(
            f"--sizes: unknown {', '.join(unknown)}; expected some of {', '.join(PROBLEMS)}"
        )
    args.peer_list = comma_list(args.peers)
    unknown = [p for p in args.peer_list if p not in PEER_NAMES]
    if unknown:
        options.error(f"--peers: unknown {', '.join(unknown)}; expected some of {PEER_OPTIONS}")
    try:
        args.thread_list = [int(t) for t in args.threads.split(",")]
    except ValueError:
        args.thread_list = [0]
    if any(t < 1 for t in args.thread_list):
        options.error(f"--threads: expected integers >= 1, got {args.threads}")
    # Only a whole run (every size, peer, measure and thread count 1 and 2, and the memory) becomes latest.*, the
    # reference of --compare and the results git keeps: a smoke run or a part writes its folder.
    args.whole_run = (
        not args.quick
        and set(args.problem_list) == set(PROBLEMS)
        and set(args.peer_list) == set(PEER_NAMES)
        and {1, 2} <= set(args.thread_list)
        and not args.no_memory
    )
    for option, path in (("--render", args.render), ("--compare", args.compare)):
        if path is not None and not records.record_path(path).is_file():
            options.error(
                f"{option}: expected a recorded results.json or latest.json, or a run's folder "
                f"holding results.json; got {path}"
            )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.memory_impl:
        memory_child.run(args)
        return 0
    if args.child_threads:
        timing_child.run(args)
        return 0
    if args.render:
        markdown, note = records.render(args.render, chart=not args.no_plot)
        print(markdown if not note else f"{markdown}\nnote: {note}")
        return 0
    return run(args, argv or sys.argv[1:])
