"""How a run stops early: SIGTERM (what kill, schedulers and containers send) as Ctrl-C does,
after a whole step, with the checkpoint and the plot, exit status 128 + the signal's number; a
second signal at once; and no temporary file left after any exit."""

import errno
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ctrl_c import ctrl_c_during_step

import bptt
from bptt import __main__, checkpoint, training
from bptt.errors import UsageError
from bptt.progress import Progress
from bptt.trainer import Trainer
from bptt.training_config import Budget, TrainConfig

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
SMALL = ["--hidden", "16", "--seq-len", "10", "--batch", "3", "--threads", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    yield
    bptt.set_num_threads(threads)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "text.txt"
    path.write_text(TEXT)
    return path


@pytest.fixture
def config(text_file):
    return TrainConfig(text=str(text_file), hidden=8, seq_len=10, batch=3, checkpoint_every=1)


@pytest.fixture(autouse=True)
def sigterm_fails_the_test():
    """A SIGTERM sent to this process that the package does not handle fails the test, rather
    than end pytest."""

    def unhandled(signum, frame):
        raise AssertionError("SIGTERM reached the test: the package did not handle it")

    previous = signal.signal(signal.SIGTERM, unhandled)
    yield
    signal.signal(signal.SIGTERM, previous)


def temporary_files(run_dir) -> list[str]:
    return [name for name in os.listdir(run_dir) if name.endswith(".tmp")]


def start_training(run_dir, text_file) -> subprocess.Popen:
    """`bptt train` in a child process, once it has taken a step (a first row of metrics)."""
    command = [
        sys.executable, "-m", "bptt", "train", "--text", str(text_file), "--out", str(run_dir),
        *SMALL, "--steps", "100000000", "--checkpoint-every", "100000000", "--log-every", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 30
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no training step within 30 s"
        time.sleep(0.05)
    return process


def test_sigterm_stops_after_a_whole_step_with_a_checkpoint_and_the_plot(tmp_path, text_file):
    run_dir = tmp_path / "run"
    process = start_training(run_dir, text_file)
    process.send_signal(signal.SIGTERM)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr
    assert "Warning" not in stderr
    assert "stopped by SIGTERM" in stdout
    assert f"bptt train --resume {run_dir}" in stdout
    assert (run_dir / "metrics.png").is_file()
    assert temporary_files(run_dir) == []
    # written by the SIGTERM alone (checkpoints every 10^8 steps), and it resumes
    assert Trainer.resume(run_dir).step_count >= 2


# `bptt train` whose start-up (reading the text) is where SIGTERM finds it
STARTING_WHEN_TERMINATED = """
import os, signal, sys, time
from bptt import __main__
from bptt.trainer import Trainer

def terminated_while_starting(config, *args):
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(30)  # which the signal's handler interrupts
    raise AssertionError("SIGTERM did not stop the start-up")

Trainer.start = terminated_while_starting
sys.exit(__main__.main(sys.argv[1:]))
"""


def test_sigterm_during_start_up_exits_at_once_with_its_status(tmp_path, text_file):
    result = subprocess.run(
        [sys.executable, "-c", STARTING_WHEN_TERMINATED, "train", "--text", str(text_file),
         "--out", str(tmp_path / "run")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 128 + signal.SIGTERM, result.stderr
    assert result.stderr == "bptt train: terminated\n"


@pytest.mark.parametrize(
    ("signal_number", "interruption"),
    [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, training.Terminated)],
    ids=["Ctrl-C", "SIGTERM"],
)
def test_a_second_signal_while_a_checkpoint_is_written_leaves_no_temporary_file(
    tmp_path, config, monkeypatch, signal_number, interruption
):
    run_dir = tmp_path / "run"
    training.train(config, run_dir, Budget(steps=1), show_progress=False)
    before = checkpoint.checkpoint_path(run_dir).read_bytes()
    write = np.savez

    def signalled_twice_while_writing(file, **arrays):
        file.write(b"the first bytes of the file")
        os.kill(os.getpid(), signal_number)  # stop after this step
        os.kill(os.getpid(), signal_number)  # stop now
        write(file, **arrays)

    monkeypatch.setattr(np, "savez", signalled_twice_while_writing)
    with pytest.raises(interruption):
        training.resume(run_dir, Budget(steps=3), show_progress=False)
    assert temporary_files(run_dir) == []
    assert checkpoint.checkpoint_path(run_dir).read_bytes() == before


def test_a_failed_write_leaves_no_temporary_file(tmp_path, config, monkeypatch):
    def disk_full(file, **arrays):
        file.write(b"the first bytes of the file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(UsageError, match=r"checkpoint.npz: cannot write it \(No space left"):
        training.train(config, tmp_path / "run", Budget(steps=2), show_progress=False)
    assert temporary_files(tmp_path / "run") == []


@pytest.mark.parametrize(
    "signal_number", [signal.SIGINT, signal.SIGTERM], ids=["Ctrl-C", "SIGTERM"]
)
def test_a_signal_before_the_first_step_stops_cleanly(
    tmp_path, text_file, monkeypatch, capsys, signal_number
):
    show_bar = Progress.bar

    def signalled_before_the_first_step(progress, *args):
        os.kill(os.getpid(), signal_number)
        return show_bar(progress, *args)

    monkeypatch.setattr(Progress, "bar", signalled_before_the_first_step)
    run_dir = tmp_path / "run"
    # warnings are errors here (pyproject.toml): a warning of the plot's would fail the run
    status = __main__.main(
        ["train", "--text", str(text_file), "--out", str(run_dir), *SMALL, "--quiet"]
    )
    assert status == 128 + signal_number
    assert capsys.readouterr().err == ""
    assert checkpoint.read_run(run_dir).step == 0
    assert temporary_files(run_dir) == []


def test_ctrl_c_during_start_up_exits_at_once(tmp_path, text_file, monkeypatch, capsys):
    def interrupted_while_reading(config, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "start", interrupted_while_reading)
    status = __main__.main(["train", "--text", str(text_file), "--out", str(tmp_path / "run")])
    assert status == 128 + signal.SIGINT
    assert capsys.readouterr().err == "bptt train: interrupted\n"


def test_a_second_ctrl_c_during_a_long_step_stops_at_once(tmp_path):
    # A step of 200,000 characters at the least memory budget computes its states again about
    # 1,500 times: tens of seconds in the core, which the second Ctrl-C does not wait for.
    rng = np.random.default_rng(0)
    text_file = tmp_path / "text.txt"
    text_file.write_text("".join(rng.choice(list("abcdefghij \n"), 250_000)))
    T, vocabulary = 200_000, 12
    budget = bptt.memory_plan(T, 1, vocabulary, 64, vocabulary, tokens=True).minimum_bytes
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "bptt", "train", "--text", str(text_file), "--out", str(run_dir),
        "--hidden", "64", "--seq-len", str(T), "--batch", "1", "--threads", "1",
        "--memory-budget", str(budget), "--quiet",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run_dir / "metrics.csv"  # opened, its header written, as the steps begin
    deadline = time.monotonic() + 30
    while not (metrics.exists() and metrics.read_text()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no start within 30 s"
        time.sleep(0.05)
    time.sleep(1.0)  # into the first step
    process.send_signal(signal.SIGINT)
    time.sleep(0.3)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=10)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGINT, stderr
    assert stderr == "bptt train: interrupted\n"
    assert len(metrics.read_text().splitlines()) == 1  # no step ended: the header alone


@pytest.fixture
def without_tqdm(monkeypatch):
    """tqdm as if not installed (the train extra left out): importing it raises ImportError."""
    for name in ("tqdm", "tqdm.auto"):
        monkeypatch.setitem(sys.modules, name, None)


def test_a_quiet_run_needs_no_tqdm(tmp_path, config, without_tqdm):
    outcome = training.train(config, tmp_path / "run", Budget(steps=2), show_progress=False)
    assert outcome.trainer.step_count == 2


def test_a_shown_run_without_tqdm_is_a_usage_error_naming_the_extra(without_tqdm):
    with pytest.raises(
        UsageError,
        match=r"needs tqdm, which is not installed: pip install 'bptt\[train\]', or run with --quiet",
    ):
        Progress(show=True)


def test_a_signal_during_the_last_step_ends_the_run_as_its_budget_does(tmp_path, config):
    """The budget is spent when the step ends: the run is finished and validated, as a resume
    (which finds nothing to do) would not validate it later."""
    config = TrainConfig(**{**config.__dict__, "eval_every": 1000, "sample_chars": 0})
    trainer = Trainer.start(config)
    ctrl_c_during_step(trainer, 5)
    (tmp_path / "run").mkdir()
    outcome = training.run(trainer, tmp_path / "run", Budget(steps=5), show_progress=False)
    assert (outcome.finished, outcome.trainer.step_count) == (True, 5)
    rows = (tmp_path / "run" / "metrics.csv").read_text().splitlines()
    step, *_, validation_bpc, _ = rows[-1].split(",")
    assert step == "5"
    assert float(validation_bpc) > 0
    assert checkpoint.read_run(tmp_path / "run").step == 5
