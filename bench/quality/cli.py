"""`python bench/train_quality.py`: the runs one after the other, each a child process (`bptt
train`, then this program again with --recipe for each PyTorch recipe), then the plot and the
table in --out."""

import argparse
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from . import report

ENTRY = Path(__file__).resolve().parents[1] / "train_quality.py"
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "results" / "quality"
PLOT_NAME = "train_quality.png"
TABLE_NAME = "train_quality.md"
LABELS = {
    "bptt": "bptt train (defaults)",
    "bptt-bfloat16": "bptt train --compute-dtype bfloat16",
    "lstm": "PyTorch nn.LSTM",
    "rnn": "PyTorch nn.RNN",
}
DEFAULT_RUNS = "bptt,lstm,rnn"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, help="wall time of each run (default 5)")
    budget.add_argument("--steps", type=int, help="steps of each run instead of a time")
    parser.add_argument("--threads", type=int, default=2, help="of every run (default 2)")
    parser.add_argument("--text", metavar="FILE", help="(default: bptt train's own corpus)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"(default {DEFAULT_OUT})")
    parser.add_argument(
        "--runs",
        default=DEFAULT_RUNS,
        help=f"comma-separated, in order, from {', '.join(LABELS)} (default {DEFAULT_RUNS}; "
        "bptt,bptt-bfloat16 compares bptt train's two compute dtypes)",
    )
    parser.add_argument("--recipe", help=argparse.SUPPRESS)  # a child: train this recipe
    args = parser.parse_args(argv)
    args.runs = args.runs.split(",")
    unknown = [name for name in args.runs if name not in LABELS]
    if unknown or not args.runs:
        parser.error(f"--runs: expected names from {', '.join(LABELS)}, got {unknown or 'none'}")
    if args.minutes is None and args.steps is None:
        args.minutes = 5.0
    return args


def budget_options(args: argparse.Namespace) -> list[str]:
    if args.steps is not None:
        return ["--steps", str(args.steps)]
    return ["--minutes", str(args.minutes)]


def child_env() -> dict:
    """The environment of every run: OpenMP threads that sleep at once when they wait
    (OMP_WAIT_POLICY=passive, unless set already), for bptt's core and PyTorch alike. On a
    machine shared with other work, threads that spin for the one that is not running made
    every run here up to 30 times slower, and by how much varied with the load."""
    return {"OMP_WAIT_POLICY": "passive"} | dict(os.environ)


def child_command(name: str, run_dir: Path, args: argparse.Namespace) -> list[str]:
    common = ["--threads", str(args.threads), *budget_options(args)]
    common += [] if args.text is None else ["--text", args.text]
    if name.startswith("bptt"):
        dtype = ["--compute-dtype", "bfloat16"] if name == "bptt-bfloat16" else []
        train = [sys.executable, "-m", "bptt", "train", "--out", str(run_dir), "--quiet"]
        return [*train, *dtype, *common]
    return [sys.executable, str(ENTRY), "--recipe", name, "--out", str(run_dir), *common]


def conditions(args: argparse.Namespace) -> str:
    import torch

    budget = f"{args.steps} steps" if args.steps is not None else f"{args.minutes:g} minutes"
    return (
        f"{budget} each, one run after the other, {args.threads} threads, on {cpu_name()}; "
        f"Python {platform.python_version()}, torch {torch.__version__}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}."
    )


def cpu_name() -> str:
    """The CPU's model name, family and model, as /proc/cpuinfo gives them."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "an unknown CPU"
    return (
        f"{fields.get('model name', 'an unknown CPU')} (family {fields.get('cpu family', '?')} "
        f"model {fields.get('model', '?')})"
    )


def run_child(args: argparse.Namespace) -> int:
    import torch

    from bptt import corpus

    from .recipes import train

    torch.set_num_threads(args.threads)
    text = corpus.read_text(corpus.STDLIB if args.text is None else args.text)
    train(args.recipe, text, args.out, minutes=args.minutes, steps=args.steps)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.recipe is not None:
        return run_child(args)
    runs_dir = args.out / "runs"
    results = []
    for name in args.runs:
        label, run_dir = LABELS[name], runs_dir / name
        shutil.rmtree(run_dir, ignore_errors=True)  # this program's own run of before
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        print(f"{label}: {' '.join(child_command(name, run_dir, args)[1:])}", flush=True)
        subprocess.run(child_command(name, run_dir, args), env=child_env(), check=True)
        results.append(report.read_result(label, run_dir))
    text = report.table(results, conditions(args))
    (args.out / TABLE_NAME).write_text(text)
    plot = report.plot(results, args.out / PLOT_NAME, "validation loss against wall time")
    print(text + (f"\nplot: {plot}" if plot else "\nmatplotlib is not installed: no plot"))
    return 0
