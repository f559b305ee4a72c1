"""`bptt train` gives the same bits at any thread count: runs at `--threads` 1, 2 and 4 write the
same checkpoint, and a run resumed at another thread count than it started with, in another
process, writes the checkpoint of the run taken in one go at a third."""

import csv
import json

import numpy as np
import pytest
from command_line import bptt_command
from test_same_bits_any_threads import bits, restore_threads  # noqa: F401

from bptt import __main__, checkpoint, metrics

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:5000]
STEPS = 24

# Sizes for each of the whole model's schedules, which decide how its work is shared on threads:
# stepwise (30 rows a step: too few for chunks), chunks pipelined on two threads (a step's
# product too small to split) and chunks whose steps are split across threads.
SIZES = {
    "stepwise": ["--hidden", "16", "--seq-len", "10", "--batch", "3"],
    "pipelined": ["--hidden", "64", "--seq-len", "32", "--batch", "8"],
    "split steps": ["--hidden", "256", "--seq-len", "16", "--batch", "16"],
}


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return path


def train(*options: str) -> None:
    assert __main__.main(["train", *options, "--quiet"]) == 0


def new_run(text_file, run_dir, size, steps, threads, *options: str) -> None:
    train(
        "--text", str(text_file), "--out", str(run_dir), *SIZES[size], "--steps", str(steps),
        "--threads", str(threads), "--eval-every", "8", "--checkpoint-every", "8",
        "--log-every", "4", *options,
    )  # fmt: skip


def numbers_of_the_run(run_dir) -> dict[str, object]:
    """The checkpoint's members (parameters, optimizer state, hidden state: their dtype, shape
    and bytes; the metadata: step, stream position, sample RNG, settings) but for the seconds
    the run took, which vary from run to run; and the losses of metrics.csv as written."""
    with np.load(checkpoint.checkpoint_path(run_dir)) as archive:
        contents = {name: bits([archive[name]]) for name in archive.files}
        metadata = json.loads(str(archive[checkpoint.METADATA_KEY]))
    del metadata["elapsed_seconds"]
    contents[checkpoint.METADATA_KEY] = metadata
    with open(run_dir / metrics.METRICS_NAME, newline="") as file:
        contents["losses"] = [
            (row["step"], row["train_bpc"], row["validation_bpc"]) for row in csv.DictReader(file)
        ]
    return contents


@pytest.mark.parametrize("size", SIZES)
def test_runs_at_1_2_and_4_threads_write_the_same_checkpoint(tmp_path, text_file, size):
    for threads in (1, 2, 4):
        new_run(text_file, tmp_path / f"{threads}", size, STEPS, threads)
    expected = numbers_of_the_run(tmp_path / "1")
    assert {"params.W", "hidden", checkpoint.METADATA_KEY} <= expected.keys()
    assert len(expected["losses"]) == STEPS // 4  # a row every --log-every steps
    for threads in (2, 4):
        assert numbers_of_the_run(tmp_path / f"{threads}") == expected, f"{threads} threads"


@pytest.mark.parametrize("size", SIZES)
def test_a_run_resumed_at_another_thread_count_equals_the_run_in_one_go(tmp_path, text_file, size):
    # a constant rate: resumed to a budget of its own, a cosine schedule would be planned anew
    constant = ("--lr-schedule", "constant")
    new_run(text_file, tmp_path / "one go", size, 2 * STEPS, 4, *constant)
    new_run(text_file, tmp_path / "resumed", size, STEPS, 1, *constant)
    resume = bptt_command(
        "train", "--resume", str(tmp_path / "resumed"), "--steps", str(2 * STEPS),
        "--threads", "2", "--quiet",
    )  # fmt: skip
    assert resume.returncode == 0, resume.stderr
    assert numbers_of_the_run(tmp_path / "resumed") == numbers_of_the_run(tmp_path / "one go")
