"""Coverage-guided fuzzing of the checkpoint loader (`bptt.checkpoint.read_run`) with atheris.

From a valid checkpoint of a 2-step run, libFuzzer mutates the file: now its raw bytes (the zip
structure itself), now one member's bytes, an array's dtype, shape or header, the metadata's
JSON text or the set of members, the archive then rebuilt with valid CRCs so that the mutation
reaches the loader's own checks. For
every input the loader must either return a SavedRun whose arrays have the shapes its settings
imply and finite values, or raise UsageError (the command line's one-line error); any other
exception, a crash, or a peak of memory beyond MEMORY_PER_FILE_BYTE times the file's size (and
a fixed allowance) is a finding, which libFuzzer saves as crash-<hash> and which becomes a test.

    pip install atheris
    PYTHONPATH=python python tests/fuzz/fuzz_checkpoint.py -max_total_time=60
    PYTHONPATH=python python tests/fuzz/fuzz_checkpoint.py -max_total_time=3600 CORPUS_DIR

Any other libFuzzer flag works too. Without a corpus directory, one is made with the seed in
the work directory (printed; $BPTT_FUZZ_WORK_DIR or a new temporary one), which libFuzzer's
exit leaves in place: pass its corpus again to go on from where a run stopped.
"""

import contextlib
import io
import json
import os
import random
import sys
import tempfile
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import atheris
import numpy as np

with atheris.instrument_imports(include=["bptt", "zipfile", "json"]):
    import bptt
    from bptt import _model, checkpoint, training
    from bptt.errors import UsageError
    from bptt.training_config import Budget, TrainConfig

# What a read may hold at its peak, per byte of the file: the members' arrays (at most the
# file's size: they are stored uncompressed), the metadata's string and what JSON makes of it
# (measured: 6.3 for a list of empty dicts, "{}," in 12 bytes of NumPy's UTF-32 becoming a
# 64-byte dict), the zip directory's entries (measured: 6.6 for 100,000 empty members); and a
# fixed allowance for the modules' own work (a valid checkpoint of 10 kB: 62 kB).
MEMORY_PER_FILE_BYTE = 10
FIXED_MEMORY_ALLOWANCE = 1 << 20
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]


def seed_checkpoint(directory: Path) -> bytes:
    """The checkpoint of a 2-step run on a small text: every kind of member, a few kB."""
    (directory / "text.txt").write_text(TEXT)
    config = TrainConfig(text=str(directory / "text.txt"), hidden=4, seq_len=10, batch=2)
    training.train(config, directory / "seed", Budget(steps=2), show_progress=False)
    return checkpoint.checkpoint_path(directory / "seed").read_bytes()


def check_saved_run(saved: checkpoint.SavedRun) -> None:
    """What read_run promises of what it returns."""
    size, config = len(saved.vocabulary), saved.config
    assert saved.config.check() is config
    for name, shape in _model.parameter_shapes(size, config.hidden, size).items():
        assert saved.params[name].shape == shape, name
        assert saved.params[name].dtype == np.dtype(config.dtype), name
    assert saved.hidden.shape == (config.batch, config.hidden)
    for value in (*saved.params.values(), *saved.optimizer_state.values(), saved.hidden):
        assert np.isfinite(value).all()


class Target:
    """Each input written as the checkpoint of one run directory, then read."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = checkpoint.checkpoint_path(run_dir)

    def __call__(self, data: bytes) -> None:
        self.path.write_bytes(data)
        start = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        with contextlib.suppress(UsageError):
            check_saved_run(checkpoint.read_run(self.run_dir))
        peak = tracemalloc.get_traced_memory()[1] - start
        allowed = MEMORY_PER_FILE_BYTE * len(data) + FIXED_MEMORY_ALLOWANCE
        if peak > allowed:
            raise AssertionError(
                f"reading a checkpoint of {len(data):,} bytes took {peak:,} bytes of memory, more "
                f"than the {allowed:,} allowed"
            )


# -- mutations that keep the archive readable -------------------------------------------------


def members_of(data: bytes) -> dict[str, bytes] | None:
    """The archive's members, or None if it is not a zip archive that reads whole."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist()}
    except Exception:  # noqa: BLE001 (any damage: the raw mutation handles such inputs)
        return None


def archive_of(members: dict[str, bytes], compression: int) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def mutated_metadata(member: bytes, max_size: int, rng: random.Random) -> bytes:
    """The metadata's JSON text mutated as bytes, stored again as a NumPy string."""
    try:
        text = str(np.load(io.BytesIO(member), allow_pickle=False))
    except Exception:  # noqa: BLE001 (a member damaged earlier: mutate its bytes)
        return atheris.Mutate(member, max_size)
    if rng.random() < 0.5:  # a value in the JSON changed, the structure kept
        with contextlib.suppress(Exception):  # a text damaged earlier: kept as it is
            text = json.dumps(mutated_json(json.loads(text), rng))
    else:
        encoded = text.encode("utf-8", "surrogatepass")  # NumPy's UTF-32 may hold surrogates
        text = atheris.Mutate(encoded, max_size // 4).decode("utf-8", "replace")
    buffer = io.BytesIO()
    np.save(buffer, np.array(text))
    return buffer.getvalue()


def mutated_json(value, rng: random.Random):
    """value with one leaf replaced by an interesting value of JSON."""
    if isinstance(value, dict) and value:
        key = rng.choice(list(value))
        return {**value, key: mutated_json(value[key], rng)}
    if isinstance(value, list) and value:
        index = rng.randrange(len(value))
        return [*value[:index], mutated_json(value[index], rng), *value[index + 1 :]]
    return rng.choice(
        [None, True, 0, -1, 1, 2**63, 10**30, 1.5, -0.0, 1e308, "", "x" * 100, [], {}, [0] * 50,
         value * 2 if isinstance(value, int | str) else value, "float64", "sgd", "adagrad"]
    )  # fmt: skip


def mutated_array(member: bytes, rng: random.Random) -> bytes:
    """An array member saved again with another dtype, shape or layout, or header version (or
    as it was, if it is no longer an array NumPy reads, or the change does not apply to it)."""
    change = rng.randrange(6)
    buffer = io.BytesIO()
    try:
        array = np.load(io.BytesIO(member), allow_pickle=False)
        if change == 0:
            array = array.astype(rng.choice(["float64", "float32", "float16", "int64", ">f4"]))
        elif change == 1:
            array = array.reshape(-1) if rng.random() < 0.5 else array[..., None]
        elif change == 2:
            array = np.concatenate([array.reshape(-1), array.reshape(-1)])
        elif change == 3:
            array = np.asfortranarray(array.T)
        elif change == 4:
            array = array.reshape(-1)[: rng.randrange(array.size + 1)]
        # change 5: the same array under the header of another version of the format
        version = rng.choice([(1, 0), (2, 0), (3, 0)]) if change == 5 else None
        np.lib.format.write_array(buffer, array, version=version)
    except Exception:  # noqa: BLE001 (the metadata's string, a member damaged earlier)
        return member
    return buffer.getvalue()


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """libFuzzer's custom mutator: `data` mutated into at most max_size bytes."""
    try:
        return mutated_checkpoint(data, max_size, random.Random(seed))
    except Exception:  # noqa: BLE001 (a mutation that does not apply: libFuzzer's own then)
        return atheris.Mutate(data, max_size)


def mutated_checkpoint(data: bytes, max_size: int, rng: random.Random) -> bytes:
    members = members_of(data)
    if members is None or not members or rng.random() < 0.2:
        return atheris.Mutate(data, max_size)  # the zip structure itself
    name = rng.choice(list(members))
    choice = rng.random()
    if choice < 0.35 and name == f"{checkpoint.METADATA_KEY}.npy":
        members[name] = mutated_metadata(members[name], max_size, rng)
    elif choice < 0.5:
        members[name] = mutated_array(members[name], rng)
    elif choice < 0.7:
        members[name] = atheris.Mutate(members[name], max(len(members[name]) * 2, 64))
    elif choice < 0.8:
        del members[name]
    elif choice < 0.9:
        members[rng.choice(["extra.npy", "hidden", name.upper(), name + "x"])] = members[name]
    else:
        members = dict(reversed(members.items()))
    compression = zipfile.ZIP_DEFLATED if rng.random() < 0.05 else zipfile.ZIP_STORED
    mutated = archive_of(members, compression)
    return mutated if len(mutated) <= max_size else atheris.Mutate(data, max_size)


def main(argv: list[str]) -> None:
    bptt.set_num_threads(1)
    work = Path(os.environ.get("BPTT_FUZZ_WORK_DIR") or tempfile.mkdtemp(prefix="fuzz_checkpoint_"))
    print(f"fuzz_checkpoint: work directory {work}", file=sys.stderr)
    seed = seed_checkpoint(work)
    (work / "run").mkdir()
    if not any(not argument.startswith("-") for argument in argv[1:]):
        (work / "corpus").mkdir()
        (work / "corpus" / "seed.npz").write_bytes(seed)
        argv = [*argv, str(work / "corpus")]
    if not any(argument.startswith("-max_len=") for argument in argv):
        argv = [*argv, f"-max_len={4 * len(seed)}"]
    tracemalloc.start()
    atheris.Setup(argv, Target(work / "run"), custom_mutator=mutate)
    atheris.Fuzz()


if __name__ == "__main__":
    warnings.simplefilter("error")  # a warning is a finding: the command line would print it
    main(sys.argv)
