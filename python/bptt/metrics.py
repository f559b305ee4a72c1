"""A run's metrics.csv (one row per logged step) and its PNG plot of the training and validation
curves in bits per character."""

import csv
import os
from array import array
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bptt.errors import UsageError, shown, writing
from bptt.regular_file import new_file_beside
from bptt.training_config import MAX_STEPS

COLUMNS = ("step", "time", "train_bpc", "validation_bpc", "chars_per_s")
METRICS_NAME = "metrics.csv"
PLOT_NAME = "metrics.png"


class MetricsLog:
    """Appends rows to run_dir/metrics.csv, flushed at once so that a crash loses no row."""

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_NAME
        kept: Iterator[list[str]] = iter(())
        if resume_step is not None and self.path.is_file():
            kept = (row for row in self.checked_rows() if int(row[0]) <= resume_step)
        # The log starts again in a new file that then replaces it (rather than a truncation
        # of whatever the name points to): the header, and on a resume the rows up to its step,
        # streamed, as a long run's log may hold millions; a resumed run forgets what its
        # predecessor logged after its last checkpoint.
        with writing(self.path):
            descriptor, name = new_file_beside(self.path)
            try:
                with os.fdopen(descriptor, "w", newline="") as file:
                    writer = csv.writer(file)
                    writer.writerow(COLUMNS)
                    writer.writerows(kept)
                os.replace(name, self.path)
            except BaseException:
                name.unlink(missing_ok=True)
                raise
            self._file = open(self.path, "a", newline="")  # noqa: SIM115 (closed by close())
        self._writer = csv.writer(self._file)

    def write(self, step, time, train_bpc, validation_bpc, chars_per_s) -> None:
        with writing(self.path):
            self._writer.writerow(
                [
                    step,
                    f"{time:.3f}",
                    "" if train_bpc is None else f"{train_bpc:.5f}",
                    "" if validation_bpc is None else f"{validation_bpc:.5f}",
                    "" if chars_per_s is None else f"{chars_per_s:.1f}",
                ]
            )
            self._file.flush()

    def checked_rows(self) -> Iterator[list[str]]:
        """The rows, one at a time, each in COLUMNS' order; UsageError naming the first that is
        not a step (an integer in [0, MAX_STEPS]) and numbers."""
        try:
            yield from _checked_rows(self.path)
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise UsageError(f"{self.path}: unreadable metrics log ({error})") from None

    def close(self) -> None:
        with writing(self.path):
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _checked_rows(path: Path) -> Iterator[list[str]]:
    with open(path, newline="") as file:
        reader = csv.reader(file)
        header = next(reader, [])
        if any(column not in header for column in COLUMNS):
            raise UsageError(
                f"{path}: corrupt metrics log (its header: {header}); expected the columns "
                f"{', '.join(COLUMNS)}"
            )
        where = [header.index(column) for column in COLUMNS]
        for line, fields in enumerate(reader, start=2):
            if not fields:  # a blank line, as csv.DictReader would skip it
                continue
            try:
                if len(fields) != len(header):
                    raise ValueError
                row = [fields[index] for index in where]
                if not 0 <= int(row[0]) <= MAX_STEPS:
                    raise ValueError
                for value in row[1:]:
                    if value:
                        float(value)
            except ValueError:
                raise UsageError(
                    f"{path}: corrupt metrics log (line {line}: {shown(fields)}); expected the "
                    f"columns {', '.join(COLUMNS)}"
                ) from None
            yield row


# The most points a curve of the plot draws: a longer one is thinned evenly (keeping its last),
# which the eye cannot tell at the figure's width.
MAX_PLOTTED_POINTS = 20_000


def plot(run_dir: str | os.PathLike) -> Path | None:
    """run_dir/metrics.png from run_dir/metrics.csv; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    run_dir = Path(run_dir)
    # Each curve's steps and values, read a row at a time into arrays.
    curves = {column: (array("d"), array("d")) for column in ("train_bpc", "validation_bpc")}
    where = {column: COLUMNS.index(column) for column in curves}
    for row in _checked_rows(run_dir / METRICS_NAME):
        for column, (steps, values) in curves.items():
            value = row[where[column]]
            if value:
                steps.append(int(row[0]))
                values.append(float(value))
    figure, axes = plt.subplots(figsize=(8, 5))
    for column, label in (("train_bpc", "training"), ("validation_bpc", "validation")):
        xs, ys = (np.frombuffer(curve) for curve in curves[column])
        if xs.size:
            every = -(-xs.size // MAX_PLOTTED_POINTS)
            kept = np.union1d(np.arange(0, xs.size, every), [xs.size - 1])
            axes.plot(
                xs[kept],
                ys[kept],
                marker="o" if column == "validation_bpc" else None,
                label=label,
            )
    axes.set_xlabel("step")
    axes.set_ylabel("bits per character")
    axes.set_title(f"bptt train: {run_dir.name}")
    axes.grid(alpha=0.3)
    if axes.lines:  # a run stopped before its first row has no curve to name
        axes.legend()
    path = run_dir / PLOT_NAME
    try:
        with writing(path):
            figure.savefig(path, dpi=100, bbox_inches="tight")
    finally:
        plt.close(figure)
    return path
