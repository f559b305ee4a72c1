"""bench/memory_budget.py's options, and which of its programs runs: the parent, a child (an
internal option: the job), or --render of a recorded run."""

import argparse
import json
import sys
from pathlib import Path

import peers
from comparison.cli import add_timing_options, comma_list, fill_timing_defaults

from . import __doc__ as DESCRIPTION
from . import memory_child, records, timing_child
from .run import run

RESULTS_FOLDER = Path(__file__).resolve().parents[1] / "results" / "memory"
CASES = ("dense", "long")
CHILDREN = {"memory": memory_child.run, "timing": timing_child.run}


def option_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=DESCRIPTION.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="CI smoke mode: problems of milliseconds, few repeats"
    )
    parser.add_argument(
        "--cases",
        default=",".join(CASES),
        help="comma-separated: dense (size 1, the budgets' table), long (size 2); default both",
    )
    parser.add_argument("--threads", default="2,1", help="comma-separated thread counts")
    parser.add_argument(
        "--peers",
        default=",".join(peers.CHECKPOINTED),
        help=f"comma-separated, from {', '.join(peers.CHECKPOINTED)}; empty for none",
    )
    parser.add_argument(
        "--segments",
        help="comma-separated segment lengths at which the peers' memory is measured "
        "(default: every divisor of T from 2 to T/2; under --quick, T/4)",
    )
    parser.add_argument(
        "--memory-threads",
        type=int,
        help="the thread count at which size 1's working memory is measured (default: the "
        "largest of --threads; one process per measurement at two threads is slow on a busy "
        "two-core machine)",
    )
    add_timing_options(parser, "case")
    parser.add_argument("--no-save", action="store_true", help="print only, write no files")
    parser.add_argument(
        "--out",
        type=Path,
        default=RESULTS_FOLDER,
        help="results folder (default bench/results/memory)",
    )
    parser.add_argument(
        "--label", help="name of this run's folder after its timestamp (default full or quick)"
    )
    parser.add_argument(
        "--render",
        type=Path,
        metavar="PATH",
        help="re-write the Markdown of a recorded results.json (or its run's folder) beside it",
    )
    # Internal: the children.
    parser.add_argument("--child-job", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    return parser


def integers(text: str, option: str, options: argparse.ArgumentParser) -> list[int]:
    """A comma-separated list of integers >= 1, or the parser's error naming the option."""
    try:
        values = [int(item) for item in comma_list(text)]
    except ValueError:
        values = []
    if not values or any(value < 1 for value in values):
        options.error(f"{option}: expected comma-separated integers >= 1, got {text!r}")
    return values


def parse_args(argv=None) -> argparse.Namespace:
    """The options, checked, with the defaults that depend on --quick filled in."""
    options = option_parser()
    args = options.parse_args(argv)
    fill_timing_defaults(args)
    args.case_list = comma_list(args.cases)
    unknown = [c for c in args.case_list if c not in CASES] or ([] if args.case_list else [""])
    if unknown:
        options.error(f"--cases: expected some of {', '.join(CASES)}, got {args.cases!r}")
    args.peer_list = comma_list(args.peers)
    unknown = [p for p in args.peer_list if p not in peers.CHECKPOINTED]
    if unknown:
        options.error(
            f"--peers: unknown {', '.join(unknown)}; expected some of "
            f"{', '.join(peers.CHECKPOINTED)}"
        )
    args.thread_list = integers(args.threads, "--threads", options)
    args.segment_list = integers(args.segments, "--segments", options) if args.segments else []
    if args.memory_threads is not None:
        integers(str(args.memory_threads), "--memory-threads", options)
    if args.render is not None and not records.record_path(args.render).is_file():
        options.error(
            f"--render: expected a recorded results.json or a run's folder holding one; got "
            f"{args.render}"
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_job:
        job = json.loads(args.child_job)
        Path(args.child_out).write_text(json.dumps(CHILDREN[job["kind"]](job), indent=1))
        return 0
    if args.render:
        print(records.render(args.render))
        return 0
    return run(args, argv if argv is not None else sys.argv[1:])
