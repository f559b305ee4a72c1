"""Damaged checkpoints that the fuzzer (tests/fuzz/fuzz_checkpoint.py) found to escape the
loader's one-line error, each rebuilt here from a valid checkpoint by the damage it had; and
the fuzzer itself, run for a few seconds when atheris is installed."""

import io
import zipfile

import pytest
from fuzzing import assert_the_fuzzer_finds_nothing

import bptt
from bptt import checkpoint, training
from bptt.errors import UsageError
from bptt.training_config import Budget, TrainConfig

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, bytes]:
    """The members of a valid checkpoint, by name."""
    root = tmp_path_factory.mktemp("fuzzed")
    (root / "text.txt").write_text(TEXT)
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    config = TrainConfig(text=str(root / "text.txt"), hidden=4, seq_len=10, batch=2)
    training.train(config, root / "run", Budget(steps=2), show_progress=False)
    bptt.set_num_threads(threads)
    with zipfile.ZipFile(checkpoint.checkpoint_path(root / "run")) as archive:
        return {info.filename: archive.read(info) for info in archive.infolist()}


def read_with(tmp_path, members: dict[str, bytes]) -> checkpoint.SavedRun:
    """read_run of a checkpoint of these members (stored, with valid CRCs)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    checkpoint.checkpoint_path(tmp_path).write_bytes(buffer.getvalue())
    return checkpoint.read_run(tmp_path)


def test_the_valid_members_read(tmp_path, members):
    assert read_with(tmp_path, members).step == 2


def test_a_npy_header_cut_inside_its_dictionary(tmp_path, members):
    # the header's length field kept, its text grown: numpy's reparse for Python 2's syntax
    # then meets an unterminated string and raised tokenize.TokenError
    header = members["params.b.npy"]
    damaged = header.replace(b"'shape'", b"'shape" + b"c" * 80 + b"'", 1)
    with pytest.raises(UsageError, match=r"params\.b\.npy: unreadable \.npy header"):
        read_with(tmp_path, {**members, "params.b.npy": damaged})


def test_the_fuzzer_finds_nothing_in_a_few_seconds(tmp_path):
    assert_the_fuzzer_finds_nothing("fuzz_checkpoint.py", tmp_path)
