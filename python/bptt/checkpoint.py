"""A run's checkpoint: one uncompressed .npz file (np.savez) holding the arrays and, as one
JSON string, everything else; written atomically, so that a crash, Ctrl-C or SIGTERM mid-write
leaves the previous checkpoint whole and no temporary file. What a `bptt train` run keeps in it
(`run_arrays`, `run_metadata`) and reads back (`read_run`): only the members the format has,
each checked against the run's settings before it is read (`bounded_npz`), and every field."""

import json
import math
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from bptt import memory, stack
from bptt.bounded_npz import ArchiveError, BoundedNpz
from bptt.corpus import Vocabulary
from bptt.errors import SettingError, UsageError, check_integer, check_number, writing
from bptt.optimizers import OPTIMIZERS
from bptt.regular_file import NotRegularFile, new_file_beside
from bptt.training_config import MAX_MINUTES, MAX_STEPS, Budget, TrainConfig

CHECKPOINT_NAME = "checkpoint.npz"
FORMAT = "bptt-train-checkpoint-1"
METADATA_KEY = "metadata_json"
# the longest metadata: the settings and counts (a few hundred characters) and a vocabulary of
# every Unicode character, each escaped by json.dumps as up to 12 characters (a surrogate pair)
MAX_METADATA_LENGTH = 4096 + 12 * 0x110000
# the rates of the checkpoints that record none (lr None), the defaults they were trained at
EARLIER_DEFAULT_LEARNING_RATES = {"adam": 2e-3, "adagrad": 5e-2, "sgd": 0.1}
# the settings added to the format since its first checkpoints, with the value those had
ADDED_SETTINGS: dict[str, object] = {
    "memory_budget": None,
    "compute_dtype": None,
    "layers": 1,
    "init": "uniform",
    "lr_schedule": "constant",
}


def checkpoint_path(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / CHECKPOINT_NAME


def save(run_dir: str | os.PathLike, arrays: Mapping[str, np.ndarray], metadata: dict) -> Path:
    """Write arrays and metadata to run_dir/checkpoint.npz: temporary file, fsync, rename."""
    path = checkpoint_path(run_dir)
    contents: dict[str, Any] = {METADATA_KEY: np.array(json.dumps({"format": FORMAT, **metadata}))}
    contents.update(arrays)
    with writing(path):
        # a new file of its own (O_EXCL): never one a name planted beforehand points to
        descriptor, temporary = new_file_beside(path)
        try:
            with os.fdopen(descriptor, "wb") as file:
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


@contextmanager
def _opened(run_dir) -> Iterator[BoundedNpz]:
    """run_dir's checkpoint opened; UsageError if missing, unreadable or not a zip archive, and
    the archive's errors while it is read as UsageErrors naming the checkpoint."""
    path = checkpoint_path(run_dir)
    try:
        if not Path(run_dir).is_dir():
            what = "not a directory" if Path(run_dir).exists() else "no such run directory"
            raise UsageError(f"{run_dir}: {what} (expected a bptt train run's directory)")
        if not path.exists():
            raise UsageError(f"{run_dir}: no {CHECKPOINT_NAME} in it (not a bptt train run?)")
        archive = BoundedNpz(path)
    except ArchiveError as error:
        raise UsageError(f"{path}: corrupt or truncated checkpoint ({error})") from None
    except NotRegularFile as error:
        raise UsageError(f"{path}: is {error}, expected a regular file") from None
    except OSError as error:  # e.g. a name too long to look up
        raise UsageError(f"{run_dir}: cannot read it ({error.strerror or error})") from None
    try:
        with archive:
            yield archive
    except ArchiveError as error:
        raise corrupt(path, str(error)) from None


def _read_metadata(archive: BoundedNpz, path: Path) -> dict:
    try:
        metadata = json.loads(archive.read_string(METADATA_KEY, MAX_METADATA_LENGTH))
    except ValueError as error:  # not JSON, or an integer of more digits than Python parses
        raise corrupt(path, f"{METADATA_KEY}: {error}") from None
    except RecursionError:  # JSON nested deeper than the parser's stack
        raise corrupt(path, "its metadata is nested too deep") from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise UsageError(f"{path}: not a {FORMAT} checkpoint")
    return metadata


def _checked_values(value: np.ndarray, name: str, path, *, nonnegative: bool) -> np.ndarray:
    """value, checked to hold finite values (and no negative ones, when `nonnegative`)."""
    if not np.isfinite(value).all():
        raise corrupt(path, f"{name} holds NaN or infinity")
    if nonnegative and (value < 0).any():
        raise corrupt(path, f"{name} holds negative values")
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
        "schedule_horizon": asdict(trainer.horizon),
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
    horizon: Budget  # the learning-rate schedule's, in run totals


def read_run(run_dir) -> SavedRun:
    """run_dir's checkpoint, or UsageError naming the first field or member that is missing or
    invalid. The metadata is read first; each array then only once its member is checked to
    have the shape and dtype that the metadata's settings imply."""
    path = checkpoint_path(run_dir)
    with _opened(run_dir) as archive:
        metadata = _read_metadata(archive, path)
        config = _config_of(metadata, path)
        characters = _vocabulary_of(metadata, path)
        fingerprint = metadata.get("text_fingerprint")
        if not isinstance(fingerprint, str):
            raise corrupt(path, "no text fingerprint")
        step, position, elapsed_seconds = _counts_of(metadata, config, path)
        budget = _budget_of(metadata, path, "budget")
        # a checkpoint written before schedules: its runs had constant rates, and no horizon;
        # a horizon counts the minutes of every invocation, a year's budget after any run's time
        horizon = _budget_of(
            {"schedule_horizon": asdict(budget)} | metadata,
            path,
            "schedule_horizon",
            max_minutes=None,
        )
        rng = _rng_of(metadata, path)
        # Each layer has its U, W, b and their optimizer state as members: a layer count beyond
        # the members is refused before the arrays' names are listed for it.
        per_layer = 3 * (1 + len(OPTIMIZERS[config.optimizer].state_names))
        if per_layer * config.layers > archive.member_count:
            raise corrupt(
                path, f"config.layers {config.layers}: its arrays are those of fewer layers"
            )
        shapes = array_shapes(config, len(characters))
        unexpected = archive.unexpected_members({*shapes, METADATA_KEY})
        if unexpected:
            raise corrupt(path, f"{unexpected[0]}: not a member of a {FORMAT} checkpoint")
        dtype = np.dtype(config.dtype)
        memory.check_available(
            sum(math.prod(shape) for shape in shapes.values()) * dtype.itemsize,
            f"{path}: reading its arrays",
        )
        nonnegative = _nonnegative_arrays(config)
        arrays = {
            name: _checked_values(
                archive.read_array(name, shape, dtype), name, path, nonnegative=name in nonnegative
            )
            for name, shape in shapes.items()
        }
    params = {name: arrays.pop(f"params.{name}") for name in stack.param_names(config.layers)}
    hidden = arrays.pop("hidden")
    return SavedRun(
        path,
        config,
        Vocabulary(characters),
        fingerprint,
        params,
        arrays,  # the rest: the optimizer's state
        hidden,
        step,
        position,
        rng,
        float(elapsed_seconds),
        budget,
        horizon,
    )


def load_model(run_dir) -> tuple[dict[str, np.ndarray], Vocabulary, str]:
    """The parameters, vocabulary and activation saved in run_dir, for sampling."""
    saved = read_run(run_dir)
    return saved.params, saved.vocabulary, saved.config.activation


def array_shapes(config: TrainConfig, vocabulary_size: int) -> dict[str, tuple[int, ...]]:
    """The shape of each array of a checkpoint (`run_arrays`'s names) of a run with these
    settings and vocabulary size."""
    shapes = stack.parameter_shapes(vocabulary_size, config.hidden, vocabulary_size, config.layers)
    arrays = {f"params.{name}": shape for name, shape in shapes.items()}
    optimizer = OPTIMIZERS[config.optimizer]
    for state in optimizer.state_names:
        for name, shape in shapes.items():
            arrays[optimizer.state_array_name(state, name)] = shape
    arrays["hidden"] = config.state_shape
    return arrays


def _nonnegative_arrays(config: TrainConfig) -> set[str]:
    """The arrays of array_shapes(config, ...) that hold sums of squares."""
    optimizer = OPTIMIZERS[config.optimizer]
    return {
        optimizer.state_array_name(state, name)
        for state in optimizer.nonnegative_states
        for name in stack.param_names(config.layers)
    }


def _vocabulary_of(metadata: dict, path: Path) -> str:
    """The vocabulary's characters, checked to be distinct and in code point order, as
    Vocabulary.of_text gives them."""
    characters = metadata.get("vocabulary")
    if not isinstance(characters, str) or not characters:
        raise corrupt(path, "no valid vocabulary")
    try:  # code points from UTF-32: 4 bytes a character, where a set of characters takes ~100
        code_points = np.frombuffer(characters.encode("utf-32-le"), np.uint32)
    except UnicodeEncodeError:  # a lone surrogate, which no UTF-8 text holds
        raise corrupt(path, "its vocabulary holds a character that is not Unicode text") from None
    if not (np.diff(code_points.astype(np.int64)) > 0).all():
        raise corrupt(path, "its vocabulary is not distinct characters in code point order")
    return characters


def _counts_of(metadata: dict, config: TrainConfig, path: Path) -> tuple[int, int, float]:
    """The step, the streams' position and the elapsed seconds."""
    try:
        step = check_integer("step", metadata.get("step"), 0, MAX_STEPS)
        optimizer_steps = check_integer(
            "optimizer_steps", metadata.get("optimizer_steps"), 0, MAX_STEPS
        )
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
    return step, position, float(elapsed_seconds)


def _rng_of(metadata: dict, path: Path) -> np.random.Generator:
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = metadata["rng_state"]
    except (TypeError, ValueError, OverflowError, KeyError) as error:
        raise corrupt(path, f"rng_state: {error!r}") from None
    return rng


def _config_of(metadata: dict, path: Path) -> TrainConfig:
    stored = metadata.get("config")
    if isinstance(stored, dict):
        stored = ADDED_SETTINGS | stored
        if stored.get("lr") is None:
            stored["lr"] = EARLIER_DEFAULT_LEARNING_RATES.get(str(stored.get("optimizer")))
    if not isinstance(stored, dict) or set(stored) != _field_names(TrainConfig):
        raise corrupt(path, "its settings are missing or unknown")
    return _checked(TrainConfig(**stored), "config", path)


def _budget_of(
    metadata: dict, path: Path, key: str, max_minutes: float | None = MAX_MINUTES
) -> Budget:
    stored = metadata.get(key)
    if not isinstance(stored, dict) or set(stored) != _field_names(Budget):
        raise corrupt(path, f"{key}: expected steps and minutes, got {stored!r}")
    return _checked(Budget(**stored), key, path, max_minutes=max_minutes)


def _field_names(settings: type) -> set[str]:
    return {field.name for field in fields(settings)}


def _checked(settings, key: str, path: Path, **options):
    """settings.check(**options), an invalid field named by its place in the metadata:
    "config.text"."""
    try:
        return settings.check(**options)
    except SettingError as error:
        raise corrupt(path, error.describe(lambda setting: f"{key}.{setting}")) from None
