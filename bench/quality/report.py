"""The comparison's outputs from the runs' metrics.csv files: validation bits per character
against wall-clock time in one PNG, and a markdown table of each run's result beside it."""

import csv
from pathlib import Path
from typing import NamedTuple

from bptt import metrics


class Result(NamedTuple):
    label: str
    times: list[float]  # seconds since the run's start, at each validation
    validation_bpc: list[float]
    steps: int
    chars_per_s: float  # of the training steps alone (validations excluded)


def read_result(label: str, run_dir: Path) -> Result:
    with open(run_dir / metrics.METRICS_NAME, newline="") as file:
        rows = list(csv.DictReader(file))
    scored = [row for row in rows if row["validation_bpc"]]
    rates = [float(row["chars_per_s"]) for row in rows if row["chars_per_s"]]
    # each logged interval is the same number of steps: the rate of all is their harmonic mean
    chars_per_s = len(rates) / sum(1 / rate for rate in rates) if rates else float("nan")
    return Result(
        label,
        [float(row["time"]) for row in scored],
        [float(row["validation_bpc"]) for row in scored],
        int(rows[-1]["step"]) if rows else 0,
        chars_per_s,
    )


def table(results: list[Result], conditions: str) -> str:
    lines = [
        conditions,
        "",
        "| run | validation bits/char (end) | best | steps | training chars/s | wall s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        end = result.validation_bpc[-1] if result.validation_bpc else float("nan")
        best = min(result.validation_bpc, default=float("nan"))
        wall = result.times[-1] if result.times else float("nan")
        lines.append(
            f"| {result.label} | {end:.3f} | {best:.3f} | {result.steps:,} | "
            f"{result.chars_per_s:,.0f} | {wall:.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(results: list[Result], path: Path, title: str) -> Path | None:
    """The curves in path (PNG); None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for result in results:
        axes.plot(result.times, result.validation_bpc, marker=".", label=result.label)
    axes.set_xlabel("wall-clock seconds")
    axes.set_ylabel("validation bits per character")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    if axes.lines:
        axes.legend()
    try:
        figure.savefig(path, dpi=80, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path
