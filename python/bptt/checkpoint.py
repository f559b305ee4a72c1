"""A run's checkpoint: one .npz file (allow_pickle=False) holding the arrays and, as one JSON
string, everything else; written atomically, so that a crash or Ctrl-C mid-write leaves the
previous checkpoint whole. What a `bptt train` run keeps in it (`run_arrays`, `run_metadata`)
and reads back, every field checked (`read_run`)."""

import json
import os
import zipfile
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bptt import _model
from bptt.corpus import Vocabulary
from bptt.errors import SettingError, UsageError, check_integer, check_number, writing
from bptt.optimizers import OPTIMIZERS
from bptt.training_config import Budget, TrainConfig

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


# -- a run's contents ----------------------------------------------------------------------------


def run_arrays(trainer) -> dict[str, np.ndarray]:
    """The arrays of a Trainer's checkpoint: params.U ... params.c, the optimizer's state by
    `state_array_name` (e.g. adam.exp_avg.W) and hidden, the state the next step starts from."""
    arrays = {f"params.{name}": value for name, value in trainer.params.items()}
    arrays.update(trainer.optimizer.state_arrays())
    arrays["hidden"] = trainer.hidden
    return arrays


def run_metadata(trainer, elapsed_seconds: float) -> dict:
    """Everything else a Trainer's checkpoint holds, as JSON values."""
    return {
        "config": asdict(trainer.config),
        "vocabulary": trainer.corpus.vocabulary.characters,
        "text_fingerprint": trainer.corpus.fingerprint,
        "step": trainer.step_count,
        "position": trainer.position,
        "optimizer_steps": trainer.optimizer.step_count,
        "rng_state": trainer.rng.bit_generator.state,
        "elapsed_seconds": elapsed_seconds,
        "budget": asdict(trainer.budget),
    }


class SavedRun(NamedTuple):
    """A checkpoint's contents, every field checked for its type, range and finiteness."""

    path: Path
    config: TrainConfig
    vocabulary: Vocabulary
    text_fingerprint: str
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    hidden: np.ndarray
    step: int
    position: int  # checked against the text's streams by Trainer.resume
    rng: np.random.Generator
    elapsed_seconds: float
    budget: Budget


def read_run(run_dir) -> SavedRun:
    """run_dir's checkpoint, or UsageError naming the first field that is missing or invalid."""
    arrays, metadata = load(run_dir)
    path = checkpoint_path(run_dir)
    config = _config_of(metadata, path)
    characters = metadata.get("vocabulary")
    if not isinstance(characters, str) or not characters or len(set(characters)) != len(characters):
        raise corrupt(path, "no valid vocabulary")
    fingerprint = metadata.get("text_fingerprint")
    if not isinstance(fingerprint, str):
        raise corrupt(path, "no text fingerprint")
    size, dtype = len(characters), np.dtype(config.dtype)
    shapes = _model.parameter_shapes(size, config.hidden, size)
    params = {
        name: require(arrays, f"params.{name}", shape, dtype, path)
        for name, shape in shapes.items()
    }
    optimizer = OPTIMIZERS[config.optimizer]
    optimizer_state = {}
    for state in optimizer.state_names:
        for name, shape in shapes.items():
            key = optimizer.state_array_name(state, name)
            optimizer_state[key] = require(
                arrays, key, shape, dtype, path, nonnegative=state in optimizer.nonnegative_states
            )
    hidden = require(arrays, "hidden", (config.batch, config.hidden), dtype, path)
    try:
        step = check_integer("step", metadata.get("step"), 0)
        optimizer_steps = check_integer("optimizer_steps", metadata.get("optimizer_steps"), 0)
        if optimizer_steps != step:  # every step is one optimizer update
            raise UsageError(f"optimizer_steps {optimizer_steps} is not the step count {step}")
        position = check_integer("position", metadata.get("position"), 0)
        if position % config.seq_len:
            raise UsageError(f"stream position {position}")
        elapsed_seconds = check_number(
            "elapsed_seconds", metadata.get("elapsed_seconds"), zero_allowed=True
        )
    except UsageError as error:
        raise corrupt(path, str(error)) from None
    budget = _budget_of(metadata, path)
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = metadata.get("rng_state")
    except (TypeError, ValueError, OverflowError) as error:
        raise corrupt(path, f"rng_state: {error}") from None
    return SavedRun(
        path,
        config,
        Vocabulary(characters),
        fingerprint,
        params,
        optimizer_state,
        hidden,
        step,
        position,
        rng,
        float(elapsed_seconds),
        budget,
    )


def load_model(run_dir) -> tuple[dict[str, np.ndarray], Vocabulary, str]:
    """The parameters, vocabulary and activation saved in run_dir, for sampling."""
    saved = read_run(run_dir)
    return saved.params, saved.vocabulary, saved.config.activation


def _config_of(metadata: dict, path: Path) -> TrainConfig:
    stored = metadata.get("config")
    if not isinstance(stored, dict) or set(stored) != _field_names(TrainConfig):
        raise corrupt(path, "its settings are missing or unknown")
    return _checked(TrainConfig(**stored), "config", path)


def _budget_of(metadata: dict, path: Path) -> Budget:
    stored = metadata.get("budget")
    if not isinstance(stored, dict) or set(stored) != _field_names(Budget):
        raise corrupt(path, f"budget: expected steps and minutes, got {stored!r}")
    return _checked(Budget(**stored), "budget", path)


def _field_names(settings: type) -> set[str]:
    return {field.name for field in fields(settings)}


def _checked(settings, key: str, path: Path):
    """settings.check(), an invalid field named by its place in the metadata: "config.text"."""
    try:
        return settings.check()
    except SettingError as error:
        raise corrupt(path, error.describe(lambda setting: f"{key}.{setting}")) from None
