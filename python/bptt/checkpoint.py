"""A run's checkpoint: one .npz file (allow_pickle=False) holding the arrays and, as one JSON
string, everything else; written atomically, so that a crash or Ctrl-C mid-write leaves the
previous checkpoint whole."""

import json
import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from bptt.errors import UsageError, writing

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = "bptt-train-checkpoint-1"
_METADATA_KEY = "metadata_json"


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save(run_dir: str | os.PathLike, arrays: Mapping[str, np.ndarray], metadata: dict) -> Path:
    """Write arrays and metadata to run_dir/checkpoint.npz: temporary file, fsync, rename."""
    path = checkpoint_path(run_dir)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    contents = {_METADATA_KEY: np.array(json.dumps({"format": FORMAT, **metadata}))}
    contents.update(arrays)
    with writing(path):
        try:
            with open(temporary, "wb") as file:
                np.savez(file, **contents)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
        # the rename itself reaches the disk only with the directory's entry
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    return path


def load(run_dir: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays and metadata of run_dir/checkpoint.npz; UsageError if missing or unreadable."""
    path = checkpoint_path(run_dir)
    try:
        if not Path(run_dir).is_dir():
            raise UsageError(f"{run_dir}: no such run directory")
        if not path.is_file():
            raise UsageError(f"{run_dir}: no {CHECKPOINT_NAME} in it (not a bptt train run?)")
    except OSError as error:  # e.g. a name too long to look up
        raise UsageError(f"{run_dir}: cannot read it ({error.strerror or error})") from None
    try:
        # reading every array here checks every member's CRC, so truncation shows now
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        metadata = json.loads(str(arrays.pop(_METADATA_KEY)))
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path}: corrupt or truncated checkpoint ({error})") from None
    except RecursionError:  # JSON nested deeper than the parser's stack
        raise UsageError(f"{path}: corrupt checkpoint (its metadata is nested too deep)") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise UsageError(f"{path}: not a {FORMAT} checkpoint")
    return arrays, metadata


def require(
    arrays: Mapping[str, np.ndarray],
    name: str,
    shape: tuple,
    dtype,
    path,
    *,
    nonnegative: bool = False,
) -> np.ndarray:
    """arrays[name], checked to have the shape and dtype the run's settings imply and to hold
    finite values (and no negative ones, when `nonnegative`)."""
    value = arrays.get(name)
    if value is None or value.shape != tuple(shape) or value.dtype != np.dtype(dtype):
        found = "missing" if value is None else f"{value.dtype}{list(value.shape)}"
        raise UsageError(
            f"{path}: corrupt checkpoint: {name} should be {np.dtype(dtype)}{list(shape)}, "
            f"found {found}"
        )
    if not np.isfinite(value).all():
        raise UsageError(f"{path}: corrupt checkpoint: {name} holds NaN or infinity")
    if nonnegative and (value < 0).any():
        raise UsageError(f"{path}: corrupt checkpoint: {name} holds negative values")
    return value


def corrupt(path, problem: str) -> UsageError:
    return UsageError(f"{path}: corrupt checkpoint ({problem})")
