"""A command whose standard output takes no more text (a closed pipe, as `| head` leaves it; a
full disk) says so in one line on stderr and exits with status 1, without a traceback; a run
stops after its step with its checkpoint, which resumes."""

import os
import subprocess
import sys

import pytest

from bptt import checkpoint

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
SMALL = ["--hidden", "8", "--seq-len", "5", "--batch", "2", "--threads", "1"]

full_disk = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")


def bptt(*args: str, stdout) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bptt", *args], stdout=stdout, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return path


@full_disk
def test_a_run_whose_output_fails_stops_with_a_checkpoint_that_resumes(tmp_path, text_file):
    run_dir = tmp_path / "run"
    options = ["--text", str(text_file), "--out", str(run_dir), *SMALL, "--eval-every", "10"]
    with open("/dev/full", "w") as full:
        process = bptt("train", *options, "--steps", "30", stdout=full)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "Traceback" not in stderr
    last_line = stderr.splitlines()[-1]  # after the progress bar's
    assert last_line.startswith("bptt train: error: standard output: No space left on device; ")
    assert last_line.endswith(f"continue with: bptt train --resume {run_dir}")
    stopped_at = checkpoint.read_run(run_dir).step
    assert stopped_at < 30
    resumed = bptt("train", "--resume", str(run_dir), "--quiet", stdout=subprocess.DEVNULL)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    assert checkpoint.read_run(run_dir).step == 30


def test_a_sample_read_in_part_ends_without_a_traceback(tmp_path, text_file):
    run_dir = tmp_path / "run"
    train = ["train", "--text", str(text_file), "--out", str(run_dir), *SMALL, "--steps", "2"]
    trained = bptt(*train, "--quiet", stdout=subprocess.DEVNULL)
    assert trained.communicate(timeout=120)[1] == ""
    # more than a pipe holds, of which the reader takes ten characters and goes (`| head -c 10`)
    process = bptt("sample", str(run_dir), "--length", "200000", stdout=subprocess.PIPE)
    assert process.stdout is not None
    assert process.stderr is not None
    with process.stdout, process.stderr:
        process.stdout.read(10)
        process.stdout.close()
        stderr = process.stderr.read()
    assert process.wait(timeout=120) == 1
    assert stderr == "bptt sample: error: standard output: Broken pipe\n"


@full_disk
def test_a_check_whose_report_fails_to_be_written_ends_with_one_line():
    with open("/dev/full", "w") as full:
        process = bptt("check", "-T", "5", "-B", "2", "-D", "3", "-H", "4", "-O", "3", stdout=full)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr == "bptt check: error: standard output: No space left on device\n"
