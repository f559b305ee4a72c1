"""The text of `bptt train`: a regular file, its size checked against the memory available
before it is read; recorded in the checkpoint by its absolute path and its SHA-256, so that a
run resumes from any directory and a text changed since the run started is an error, never
trained on silently."""

import os
import shutil

import pytest
from command_line import assert_one_line_error, bptt_command

import bptt
from bptt import checkpoint, corpus
from bptt.errors import UsageError

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
SMALL = ["--hidden", "8", "--seq-len", "10", "--batch", "3", "--threads", "1", "--quiet"]


@pytest.fixture
def started_run(tmp_path):
    """A run of 2 steps started in tmp_path/work with a relative --text small.txt."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "small.txt").write_text(TEXT)
    result = bptt_command(
        "train", "--text", "small.txt", "--out", "run", "--steps", "2", *SMALL, cwd=work
    )
    assert result.returncode == 0, result.stderr
    return work / "run"


def test_a_run_started_with_a_relative_text_resumes_from_another_directory(started_run, tmp_path):
    result = bptt_command("train", "--resume", str(started_run), "--steps", "4", "--quiet",
                          cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert checkpoint.read_run(started_run).step == 4


def test_the_checkpoint_records_the_text_by_its_absolute_path(started_run):
    recorded = checkpoint.read_run(started_run).config.text
    assert recorded == str(started_run.parent / "small.txt")


@pytest.mark.parametrize(
    "new_text",
    [TEXT.replace("return", "yield "), TEXT + "Zebra"],
    ids=["same vocabulary", "another vocabulary"],
)
def test_a_text_changed_since_the_run_started_is_an_error(started_run, new_text):
    (started_run.parent / "small.txt").write_text(new_text)
    before = checkpoint.checkpoint_path(started_run).read_bytes()
    result = bptt_command("train", "--resume", str(started_run), "--steps", "4", "--quiet")
    assert_one_line_error(
        result, "train", f"--text {started_run.parent / 'small.txt'}", "changed since the run"
    )
    assert checkpoint.checkpoint_path(started_run).read_bytes() == before


def test_a_text_that_moved_is_named_with_the_way_to_give_its_new_place(started_run, tmp_path):
    shutil.move(started_run.parent / "small.txt", tmp_path / "moved.txt")
    result = bptt_command("train", "--resume", str(started_run), "--steps", "4", "--quiet")
    assert_one_line_error(result, "train", "small.txt: no such file", "--text FILE")
    result = bptt_command("train", "--resume", str(started_run), "--steps", "4", "--quiet",
                          "--text", str(tmp_path / "moved.txt"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert checkpoint.read_run(started_run).config.text == str(tmp_path / "moved.txt")


def test_a_device_is_refused_without_being_read():
    result = bptt_command("train", "--text", "/dev/zero", *SMALL)
    assert_one_line_error(result, "train", "--text /dev/zero", "character device")


def test_a_pipe_is_refused_without_waiting_for_a_writer(tmp_path):
    os.mkfifo(tmp_path / "pipe")
    result = bptt_command("train", "--text", str(tmp_path / "pipe"), *SMALL)  # 60 s timeout
    assert_one_line_error(result, "train", "pipe")


def test_a_text_larger_than_the_memory_available_is_refused_before_it_is_read(
    tmp_path, monkeypatch
):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    monkeypatch.setattr(bptt._core, "available_memory_bytes", lambda: len(TEXT))
    with pytest.raises(UsageError, match=rf"text {path}: {len(TEXT):,} bytes: .* GB of memory"):
        corpus.read_text_file(path)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="no /proc")
def test_a_file_longer_than_its_size_says_is_refused():
    # /proc's files are regular files of size 0 that read as text
    with pytest.raises(UsageError, match="grew while it was read"):
        corpus.read_text_file("/proc/self/status")
