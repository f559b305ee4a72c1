"""A checkpoint is read member by member, each member's declared size checked against what the
run's settings imply before any of it is read: a small file never costs more memory than its
own size, whatever its zip directory and .npy headers declare, and every refusal is one line
naming the member."""

import contextlib
import json
import re
import tracemalloc
import zipfile

import numpy as np
import pytest
from command_line import assert_one_line_error, bptt_command

import bptt
from bptt import checkpoint, training
from bptt.errors import UsageError
from bptt.training_config import Budget, TrainConfig

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
HIDDEN, BATCH = 8, 3
# what a member declares in these tests: far more than the checkpoint's ~10 kB, little to deflate
DECLARED_BYTES = 50_000_000


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("members")
    (root / "text.txt").write_text(TEXT)
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    config = TrainConfig(text=str(root / "text.txt"), hidden=HIDDEN, seq_len=10, batch=BATCH)
    training.train(config, root / "run", Budget(steps=2), show_progress=False)
    bptt.set_num_threads(threads)
    return root / "run"


@pytest.fixture
def run_copy(trained_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.checkpoint_path(run).write_bytes(
        checkpoint.checkpoint_path(trained_run).read_bytes()
    )
    return run


def rewrite_members(run, replace: dict[str, tuple[tuple[int, ...], str]], compression):
    """The run's checkpoint with each member named in `replace` (which may be new) replaced by
    an array of zeros of the (shape, dtype) given, written with `compression`, streamed so that
    no array of that size is ever held."""
    path = checkpoint.checkpoint_path(run)
    with zipfile.ZipFile(path) as archive:
        kept = {
            info.filename: archive.read(info)
            for info in archive.infolist()
            if info.filename.removesuffix(".npy") not in replace
        }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in kept.items():
            archive.writestr(name, data)
        for name, (shape, dtype) in replace.items():
            header = {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
            info = zipfile.ZipInfo(f"{name}.npy")
            info.compress_type = compression
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array_header_2_0(member, header)
                remaining = int(np.prod(shape)) * np.dtype(dtype).itemsize
                chunk = bytes(1 << 20)
                while remaining:
                    member.write(chunk[: min(remaining, len(chunk))])
                    remaining -= min(remaining, len(chunk))


def peak_memory_of(function, *args) -> int:
    """The most memory (NumPy's arrays included) allocated at once while function(*args) ran."""
    tracemalloc.start()
    try:
        with contextlib.suppress(UsageError):
            function(*args)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("command", ["sample", "train --resume"])
def test_a_member_the_format_does_not_have_is_refused_by_name(run_copy, command):
    rewrite_members(run_copy, {"extra": ((DECLARED_BYTES // 4,), "float32")}, zipfile.ZIP_DEFLATED)
    result = bptt_command(*command.split(), str(run_copy), "--threads", "1")
    assert_one_line_error(result, command.split()[0], "checkpoint.npz", "extra.npy")


def test_a_member_the_format_does_not_have_is_refused_before_it_is_read(run_copy):
    rewrite_members(run_copy, {"extra": ((DECLARED_BYTES // 4,), "float32")}, zipfile.ZIP_DEFLATED)
    file_size = checkpoint.checkpoint_path(run_copy).stat().st_size
    assert file_size < DECLARED_BYTES / 100  # zeros deflate about 1000:1
    assert peak_memory_of(checkpoint.load_model, run_copy) < 10 * file_size


@pytest.mark.parametrize(
    "compression", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_an_array_larger_than_the_settings_imply_is_refused_before_it_is_read(
    run_copy, compression
):
    # hidden is (batch, hidden) = (3, 8) float32: 96 bytes
    rewrite_members(
        run_copy, {"hidden": ((BATCH, DECLARED_BYTES // 4 // BATCH), "float32")}, compression
    )
    with pytest.raises(UsageError, match=r"hidden\b"):
        checkpoint.read_run(run_copy)
    assert peak_memory_of(checkpoint.read_run, run_copy) < DECLARED_BYTES / 10


def test_a_compressed_member_is_refused_by_name(run_copy):
    # bptt writes its checkpoints uncompressed (np.savez), so that a member's size on disk
    # bounds the memory it takes
    path = checkpoint.checkpoint_path(run_copy)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez_compressed(path, **arrays)
    result = bptt_command("sample", str(run_copy))
    assert_one_line_error(result, "sample", "checkpoint.npz", "compressed")


def test_a_zip_directory_that_declares_more_than_a_member_holds_is_refused_by_name(run_copy):
    path = checkpoint.checkpoint_path(run_copy)
    data = bytearray(path.read_bytes())
    # the central directory's entry of hidden.npy (signature PK\1\2, its name 46 bytes on):
    # its compressed and uncompressed sizes, at bytes 20 and 24
    entry = next(
        match.start()
        for match in re.finditer(rb"PK\x01\x02", data)
        if data[match.start() + 46 :].startswith(b"hidden.npy")
    )
    data[entry + 20 : entry + 28] = DECLARED_BYTES.to_bytes(4, "little") * 2
    path.write_bytes(bytes(data))
    result = bptt_command("sample", str(run_copy))
    assert_one_line_error(result, "sample", "checkpoint.npz", "hidden.npy")


def test_a_member_that_appears_twice_is_refused_by_name(run_copy):
    path = checkpoint.checkpoint_path(run_copy)
    with zipfile.ZipFile(path) as archive:
        hidden = archive.read("hidden.npy")
    with pytest.warns(UserWarning, match="Duplicate name"), zipfile.ZipFile(path, "a") as archive:
        archive.writestr("hidden.npy", hidden)
    result = bptt_command("sample", str(run_copy))
    assert_one_line_error(result, "sample", "checkpoint.npz", "hidden.npy", "twice")


def test_metadata_that_is_not_a_string_is_refused_by_name(run_copy):
    rewrite_members(run_copy, {checkpoint.METADATA_KEY: ((1000,), "float64")}, zipfile.ZIP_STORED)
    result = bptt_command("sample", str(run_copy))
    assert_one_line_error(result, "sample", "checkpoint.npz", checkpoint.METADATA_KEY)


def test_an_array_stored_as_python_objects_is_refused_without_unpickling(run_copy):
    path = checkpoint.checkpoint_path(run_copy)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["hidden"] = np.array([[object()] * HIDDEN] * BATCH, dtype=object)
    np.savez(path, **arrays)
    result = bptt_command("sample", str(run_copy))
    assert_one_line_error(result, "sample", "checkpoint.npz", "hidden", "object")


def test_a_vocabulary_not_in_code_point_order_is_corrupt(run_copy):
    path = checkpoint.checkpoint_path(run_copy)
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    metadata = json.loads(str(arrays[checkpoint.METADATA_KEY]))
    metadata["vocabulary"] = metadata["vocabulary"][::-1]
    arrays[checkpoint.METADATA_KEY] = np.array(json.dumps(metadata))
    np.savez(path, **arrays)
    with pytest.raises(UsageError, match=r"corrupt checkpoint.*vocabulary"):
        checkpoint.read_run(run_copy)


def test_a_checkpoint_as_bptt_writes_it_reads_back_whole(trained_run):
    saved = checkpoint.read_run(trained_run)
    with np.load(checkpoint.checkpoint_path(trained_run)) as archive:
        for name, value in saved.params.items():
            np.testing.assert_array_equal(value, archive[f"params.{name}"])
        for name, value in saved.optimizer_state.items():
            np.testing.assert_array_equal(value, archive[name])
        np.testing.assert_array_equal(saved.hidden, archive["hidden"])
    assert saved.step == 2
