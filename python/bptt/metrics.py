"""A run's metrics.csv (one row per logged step) and its PNG plot of the training and validation
curves in bits per character."""

import csv
import os
from pathlib import Path

from bptt.errors import UsageError, writing

COLUMNS = ("step", "time", "train_bpc", "validation_bpc", "chars_per_s")
METRICS_NAME = "metrics.csv"
PLOT_NAME = "metrics.png"


class MetricsLog:
    """Appends rows to run_dir/metrics.csv, flushed at once so that a crash loses no row."""

    def __init__(self, run_dir: str | os.PathLike, resume_step: int | None = None):
        self.path = Path(run_dir) / METRICS_NAME
        rows = self.read_checked() if resume_step is not None and self.path.is_file() else []
        # a resumed run forgets what its predecessor logged after its last checkpoint
        rows = [row for row in rows if resume_step is not None and int(row["step"]) <= resume_step]
        with writing(self.path):
            with open(self.path, "w", newline="") as file:
                writer = csv.DictWriter(file, COLUMNS)
                writer.writeheader()
                writer.writerows(rows)
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

    def read(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as file:
            return list(csv.DictReader(file))

    def read_checked(self) -> list[dict[str, str]]:
        """The rows, or UsageError naming the first that is not an integer step and numbers."""
        try:
            rows = self.read()
        except (OSError, UnicodeDecodeError, csv.Error) as error:
            raise UsageError(f"{self.path}: unreadable metrics log ({error})") from None
        for line, row in enumerate(rows, start=2):
            try:
                int(row["step"])
                for column in COLUMNS[1:]:
                    if row[column]:
                        float(row[column])
            except (KeyError, TypeError, ValueError):
                raise UsageError(
                    f"{self.path}: corrupt metrics log (line {line}: {dict(row)}); expected the "
                    f"columns {', '.join(COLUMNS)}"
                ) from None
        return rows

    def close(self) -> None:
        with writing(self.path):
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def plot(run_dir: str | os.PathLike) -> Path | None:
    """run_dir/metrics.png from run_dir/metrics.csv; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    run_dir = Path(run_dir)
    with open(run_dir / METRICS_NAME, newline="") as file:
        rows = list(csv.DictReader(file))
    figure, axes = plt.subplots(figsize=(8, 5))
    for column, label in (("train_bpc", "training"), ("validation_bpc", "validation")):
        points = [(int(row["step"]), float(row[column])) for row in rows if row[column]]
        if points:
            steps, values = zip(*points, strict=True)
            axes.plot(
                steps, values, marker="o" if column == "validation_bpc" else None, label=label
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
