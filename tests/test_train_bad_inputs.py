"""Every bad input to `bptt train` and `bptt sample` gets one line on stderr naming the problem
and exit status 2, never a traceback; and a failed run leaves an existing checkpoint as it was."""

import subprocess
import sys

import pytest

import bptt
from bptt import checkpoint, training

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
SMALL = ["--hidden", "8", "--seq-len", "10", "--batch", "3", "--threads", "1"]


def bptt_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bptt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *phrases: str):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"bptt {command}: error: ")
    for phrase in phrases:
        assert phrase in lines[0]
    assert result.stdout == ""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A text, a run trained on it, and texts that are bad in one way each."""
    root = tmp_path_factory.mktemp("bad_inputs")
    text = root / "text.txt"
    text.write_text(TEXT)
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    config = training.TrainConfig(text=str(text), hidden=8, seq_len=10, batch=3)
    training.train(config, root / "run", training.Budget(steps=3), show_progress=False)
    bptt.set_num_threads(threads)
    (root / "latin1.txt").write_bytes("caf\xe9 ".encode("latin-1") * 500)
    (root / "short.txt").write_text("def f(x): return x\n")
    (root / "other.txt").write_text("a completely different vocabulary! " * 50)
    return root


@pytest.fixture
def run_copy(files, tmp_path):
    """A copy of the trained run, free to be damaged."""
    run = tmp_path / "run"
    run.mkdir()
    source = checkpoint.checkpoint_path(files / "run")
    checkpoint.checkpoint_path(run).write_bytes(source.read_bytes())
    return run


def test_a_missing_text_file(files):
    result = bptt_command("train", "--text", str(files / "missing.txt"), *SMALL)
    assert_one_line_error(result, "train", "missing.txt", "no such file")


def test_a_text_file_that_cannot_be_read(files):
    result = bptt_command("train", "--text", str(files), *SMALL)  # a directory
    assert_one_line_error(result, "train", str(files), "directory")


def test_a_text_that_is_not_utf8(files):
    result = bptt_command("train", "--text", str(files / "latin1.txt"), *SMALL)
    assert_one_line_error(result, "train", "latin1.txt", "not UTF-8", "0xe9")


def test_a_text_too_short_for_one_step(files):
    result = bptt_command("train", "--text", str(files / "short.txt"), *SMALL)
    assert_one_line_error(result, "train", "short.txt", "too few", "--batch 3", "--seq-len 10")


@pytest.mark.parametrize(
    ("option", "value", "phrase"),
    [
        ("--hidden", "0", "--hidden: expected an integer >= 1"),
        ("--seq-len", "ten", "--seq-len: invalid int value"),
        ("--batch", "-2", "--batch: expected an integer >= 1"),
        ("--lr", "-0.1", "--lr: expected a finite number > 0"),
        ("--clip", "nan", "--clip: expected a finite number > 0"),
        ("--steps", "0", "--steps: expected an integer >= 1"),
        ("--minutes", "-1", "--minutes: expected a finite number > 0"),
        ("--optimizer", "rmsprop", "--optimizer: invalid choice"),
        ("--threads", "0", "--threads: expected an integer >= 1"),
    ],
)
def test_an_invalid_hyperparameter(files, option, value, phrase):
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, option, value)
    assert_one_line_error(result, "train", phrase)


def test_a_new_run_into_a_directory_with_a_checkpoint_leaves_it_untouched(run_copy, files):
    before = checkpoint.checkpoint_path(run_copy).read_bytes()
    result = bptt_command("train", "--text", str(files / "text.txt"), "--out", str(run_copy))
    assert_one_line_error(result, "train", "holds a checkpoint already", "--resume")
    assert checkpoint.checkpoint_path(run_copy).read_bytes() == before


def test_a_resume_from_a_directory_without_a_checkpoint(files):
    result = bptt_command("train", "--resume", str(files / "nowhere"))
    assert_one_line_error(result, "train", "nowhere", "no such run directory")


def test_a_corrupt_checkpoint(run_copy):
    checkpoint.checkpoint_path(run_copy).write_bytes(b"not a checkpoint at all" * 10)
    result = bptt_command("train", "--resume", str(run_copy))
    assert_one_line_error(result, "train", "checkpoint.npz", "corrupt or truncated")


def test_a_truncated_checkpoint(run_copy):
    path = checkpoint.checkpoint_path(run_copy)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    result = bptt_command("train", "--resume", str(run_copy))
    assert_one_line_error(result, "train", "checkpoint.npz", "corrupt or truncated")


def test_a_checkpoint_from_another_vocabulary_is_refused_and_left_untouched(run_copy, files):
    before = checkpoint.checkpoint_path(run_copy).read_bytes()
    result = bptt_command("train", "--resume", str(run_copy), "--text", str(files / "other.txt"))
    assert_one_line_error(result, "train", "vocabulary", "other.txt")
    assert checkpoint.checkpoint_path(run_copy).read_bytes() == before


def test_a_resume_with_other_settings_than_the_run(run_copy):
    result = bptt_command("train", "--resume", str(run_copy), "--hidden", "32")
    assert_one_line_error(result, "train", "--hidden 32", "has 8")


def test_a_prime_with_characters_outside_the_vocabulary(files):
    result = bptt_command("sample", str(files / "run"), "--prime", "def Zebra():")
    assert_one_line_error(result, "sample", "--prime", "'Z'", "'b'")


def test_a_sample_temperature_of_zero(files):
    result = bptt_command("sample", str(files / "run"), "--temperature", "0")
    assert_one_line_error(result, "sample", "--temperature: expected a finite number > 0")


def test_a_sample_from_a_truncated_checkpoint(run_copy):
    path = checkpoint.checkpoint_path(run_copy)
    path.write_bytes(path.read_bytes()[:100])
    result = bptt_command("sample", str(run_copy))
    assert_one_line_error(result, "sample", "corrupt or truncated")
