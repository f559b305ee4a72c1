"""A run's directory, checked before the first step: a new run never takes one that holds a
checkpoint, and every run must be able to write its outputs there, so that a bad directory is
an error at once rather than a traceback at the first checkpoint.

Errors name the directory as the setting that gave it: NEW_RUN (train's run_dir), RESUMED_RUN
(resume's) or SAMPLED_RUN (the run sampled from), which the command line calls --out,
--resume and DIR."""

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bptt import checkpoint, metrics
from bptt.errors import SettingError, UsageError, writing
from bptt.regular_file import other_than_regular

NEW_RUN = "train.run_dir"
RESUMED_RUN = "resume.run_dir"
SAMPLED_RUN = "sample.run_dir"


def directory(run_dir: str | os.PathLike, setting: str) -> Path:
    """run_dir as a Path; a SettingError naming `setting` if it is the empty string, which Path
    would take for the current directory."""
    if not os.fspath(run_dir):
        raise SettingError.invalid(setting, "expected a directory, got ''")
    return Path(run_dir)


def check_new(run_dir: Path) -> None:
    """SettingError if run_dir holds a checkpoint: a new run never replaces one."""
    with _named_as(NEW_RUN), writing(run_dir):  # e.g. a name too long to look up
        holds_checkpoint = checkpoint.checkpoint_path(run_dir).exists()
    if holds_checkpoint:
        raise SettingError(
            lambda name: (
                f"{name(NEW_RUN)} {run_dir}: holds a checkpoint already; continue it "
                f"with {name(RESUMED_RUN)} {run_dir} or choose another {name(NEW_RUN)}"
            )
        )


def prepare(run_dir: Path, setting: str) -> None:
    """Create run_dir and check that the run can write its outputs there; errors name it as
    `setting` (NEW_RUN or RESUMED_RUN)."""
    with _named_as(setting):
        with writing(run_dir):
            if run_dir.exists() and not run_dir.is_dir():
                raise UsageError(f"{run_dir}: is a file, expected a directory")
            run_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=run_dir):
                pass
        for name in (metrics.METRICS_NAME, metrics.PLOT_NAME):
            # a pipe would block the run's first write to it (or its plot, after every step)
            kind = other_than_regular(run_dir / name)
            if kind:
                raise UsageError(f"{run_dir}: its {name} is {kind}, expected a file")


@contextmanager
def _named_as(setting: str) -> Iterator[None]:
    """A UsageError about the directory, its message starting with the path, as a SettingError
    naming `setting` before the path ("--out runs/x: is a file, ..." on the command line)."""
    try:
        yield
    except UsageError as error:
        message = str(error)
        raise SettingError(lambda name: f"{name(setting)} {message}") from None
