"""Stopping and resuming a run changes nothing: N steps, a stop and N more give bitwise the same
state as 2N steps in one go; Ctrl-C leaves a checkpoint that resumes."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
from command_line import bptt_command
from ctrl_c import ctrl_c_during_step

import bptt
from bptt import _core, checkpoint, lr_schedule, metrics, training
from bptt.trainer import Trainer
from bptt.training_config import Budget, TrainConfig

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]


@pytest.fixture(autouse=True)
def one_thread():
    # the core gives the same bits at any thread count; one is fastest at these sizes
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    yield
    bptt.set_num_threads(threads)


@pytest.fixture
def config(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    # 38 steps an epoch: a run of 60 steps crosses an epoch's end. A constant rate: a resume
    # given a budget of its own plans a cosine schedule anew (tested with the schedules below)
    return TrainConfig(
        text=str(text_file),
        hidden=16,
        seq_len=10,
        batch=3,
        lr_schedule="constant",
        eval_every=20,
        checkpoint_every=20,
    )


def state_of(trainer: Trainer) -> dict[str, np.ndarray]:
    """Every array a later step depends on."""
    return {**trainer.params, **trainer.optimizer.state_arrays(), "hidden": trainer.hidden}


def assert_same_state(resumed: Trainer, one_go: Trainer):
    assert resumed.step_count == one_go.step_count
    assert resumed.position == one_go.position
    assert resumed.rng.bit_generator.state == one_go.rng.bit_generator.state
    expected = state_of(one_go)
    for name, value in state_of(resumed).items():
        np.testing.assert_array_equal(value, expected[name], err_msg=name)  # bitwise


@pytest.mark.parametrize("optimizer", ["adam", "adagrad", "sgd"])
def test_n_steps_then_a_resume_to_2n_equal_2n_steps_in_one_go(tmp_path, config, optimizer):
    config = TrainConfig(**{**config.__dict__, "optimizer": optimizer})
    one_go = training.train(config, tmp_path / "one", Budget(steps=60), show_progress=False)
    training.train(config, tmp_path / "two", Budget(steps=30), show_progress=False)
    resumed = training.resume(tmp_path / "two", Budget(steps=60), show_progress=False)
    assert_same_state(resumed.trainer, one_go.trainer)


@pytest.mark.parametrize(("layers", "schedule"), [(2, "constant"), (1, "cosine"), (3, "cosine")])
def test_n_steps_then_a_resume_to_2n_equal_2n_steps_in_one_go_for_stacks_and_schedules(
    tmp_path, config, layers, schedule
):
    config = replace(config, layers=layers, lr_schedule=schedule)
    one_go = training.train(config, tmp_path / "one", Budget(steps=60), show_progress=False)
    # a run of 60 steps stopped after 30 by Ctrl-C: its schedule's place is 30 of 60
    stopped = Trainer.start(config)
    ctrl_c_during_step(stopped, 30)
    (tmp_path / "two").mkdir()
    outcome = training.run(stopped, tmp_path / "two", Budget(steps=60), show_progress=False)
    assert (outcome.stopped_by, outcome.trainer.step_count) == (signal.SIGINT, 30)
    resumed = training.resume(tmp_path / "two", show_progress=False)
    assert_same_state(resumed.trainer, one_go.trainer)
    assert resumed.trainer.hidden.shape == ((3, 16) if layers == 1 else (layers, 3, 16))


def test_a_resume_given_a_budget_plans_the_schedule_to_end_with_it(tmp_path, config):
    config = replace(config, lr_schedule="cosine")
    training.train(config, tmp_path / "run", Budget(steps=30), show_progress=False)
    assert checkpoint.read_run(tmp_path / "run").horizon == Budget(steps=30)
    resumed = training.resume(tmp_path / "run", Budget(steps=40), show_progress=False)
    assert resumed.trainer.horizon == Budget(steps=40)
    # the last step's rate: 39 steps done of 40
    assert resumed.trainer.optimizer.lr == lr_schedule.learning_rate(
        "cosine", config.learning_rate, 39, 39 / 40
    )


def test_a_resume_of_a_cosine_run_over_minutes_takes_the_minutes_left(tmp_path, config):
    config = replace(config, lr_schedule="cosine")
    trainer = Trainer.start(config)
    trainer.budget = trainer.horizon = Budget(minutes=2.0)
    trainer.elapsed_seconds = 30.0
    assert training._resumed_budget(trainer) == Budget(minutes=1.5)
    trainer.elapsed_seconds, trainer.step_count = 150.0, 7  # the horizon passed: no step left
    assert training._resumed_budget(trainer) == Budget(steps=7)
    # a constant rate has no horizon to reach: its minutes again
    trainer.config = replace(config, lr_schedule="constant")
    assert training._resumed_budget(trainer) == Budget(minutes=2.0)


def test_a_resume_without_a_budget_finishes_the_one_the_run_was_given(tmp_path, config):
    # no samples: the stepping by hand below draws none at its validation steps either
    config = TrainConfig(**{**config.__dict__, "sample_chars": 0})
    one_go = training.train(config, tmp_path / "one", Budget(steps=60), show_progress=False)
    # a run of 60 steps stopped after 30, as Ctrl-C would leave it
    stopped = Trainer.start(config)
    stopped.budget = Budget(steps=60)
    for _ in range(30):
        stopped.step()
    (tmp_path / "two").mkdir()
    stopped.save(tmp_path / "two", elapsed_seconds=0.0)
    resumed = training.resume(tmp_path / "two", show_progress=False)
    assert_same_state(resumed.trainer, one_go.trainer)


def test_a_resumed_run_logs_each_step_once_in_order(tmp_path, config):
    training.train(config, tmp_path / "run", Budget(steps=30), show_progress=False)
    training.resume(tmp_path / "run", Budget(steps=60), show_progress=False)
    with open(tmp_path / "run" / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    train_steps = [int(row["step"]) for row in rows if row["train_bpc"]]
    assert train_steps == list(range(10, 61, 10))


def run_files(run) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(run.iterdir())}


def test_a_resume_of_a_run_that_finished_its_budget_takes_no_step_and_leaves_its_files(
    tmp_path, config
):
    training.train(config, tmp_path / "run", Budget(steps=5), show_progress=False)
    before = run_files(tmp_path / "run")
    resumed = training.resume(tmp_path / "run", show_progress=False)
    assert resumed.finished
    assert resumed.trainer.step_count == 5
    assert run_files(tmp_path / "run") == before  # no validation row, checkpoint or plot again


@pytest.mark.parametrize("steps", [3, 5])
def test_a_resume_to_no_more_steps_than_the_run_took_is_refused_naming_steps(
    tmp_path, config, steps
):
    training.train(config, tmp_path / "run", Budget(steps=5), show_progress=False)
    before = run_files(tmp_path / "run")
    expected = f"^steps: expected more than the 5 steps the run in .* has taken .*, got {steps}$"
    with pytest.raises(bptt.errors.SettingError, match=expected):
        training.resume(tmp_path / "run", Budget(steps=steps), show_progress=False)
    assert run_files(tmp_path / "run") == before


def test_a_new_run_refuses_a_directory_with_a_checkpoint_and_leaves_it_as_it_was(tmp_path, config):
    training.train(config, tmp_path / "run", Budget(steps=5), show_progress=False)
    before = checkpoint.checkpoint_path(tmp_path / "run").read_bytes()
    with pytest.raises(bptt.errors.UsageError, match="holds a checkpoint already"):
        training.train(config, tmp_path / "run", Budget(steps=5), show_progress=False)
    assert checkpoint.checkpoint_path(tmp_path / "run").read_bytes() == before


def test_ctrl_c_stops_after_a_whole_step_and_leaves_a_checkpoint_that_resumes(tmp_path, config):
    run_dir = tmp_path / "run"
    command = [
        sys.executable, "-m", "bptt", "train", "--text", config.text, "--out", str(run_dir),
        "--hidden", "16", "--seq-len", "10", "--batch", "3", "--steps", "100000000",
        "--checkpoint-every", "100000000", "--log-every", "1", "--threads", "1",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until it trains (a first metrics row), then interrupt it as Ctrl-C does
    metrics = run_dir / "metrics.csv"
    deadline = time.monotonic() + 30
    while not (metrics.exists() and len(metrics.read_text().splitlines()) > 2):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no training step within 30 s"
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "stopped by Ctrl-C" in stdout
    assert f"bptt train --resume {run_dir}" in stdout
    # the checkpoint was written by the Ctrl-C alone (checkpoints every 10^8 steps), and resumes
    trainer = Trainer.resume(run_dir)
    assert trainer.step_count >= 2
    assert not list(run_dir.glob(".*.tmp")), os.listdir(run_dir)


# -- memory budgets: the same run in less memory --------------------------------------------------

LONG_TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(400))[:4000]
MEMORY_BUDGET = "72KiB"


@pytest.fixture
def long_config(tmp_path):
    """Steps of 600 characters a stream, which a budget of MEMORY_BUDGET computes again in
    segments."""
    text_file = tmp_path / "long.txt"
    text_file.write_text(LONG_TEXT)
    config = TrainConfig(
        text=str(text_file),
        hidden=16,
        seq_len=600,
        batch=3,
        lr_schedule="constant",  # resumed to a budget of its own: see `config`
        eval_every=2,
        checkpoint_every=2,
    )
    size = len(set(LONG_TEXT))
    sizes = (config.seq_len, config.batch, size, config.hidden, size)
    assert bptt.memory_plan(*sizes, tokens=True, memory_budget=MEMORY_BUDGET).schedule == "segments"
    return config


def with_budget(config, memory_budget=MEMORY_BUDGET):
    return replace(config, memory_budget=memory_budget)


def test_a_memory_budget_reaches_the_cores_whole_step(monkeypatch, long_config):
    budgets, core_training_step = [], _core.TrainingStep

    def training_step(*args, memory_budget=None, **kwargs):
        budgets.append(memory_budget)
        return core_training_step(*args, memory_budget=memory_budget, **kwargs)

    monkeypatch.setattr(_core, "TrainingStep", training_step)
    Trainer.start(with_budget(long_config))
    assert budgets == [72 * 1024]


@pytest.mark.parametrize("step", ["whole", "in parts"])
def test_a_memory_budget_gives_bitwise_the_state_of_a_run_without_one(long_config, step):
    budgets = []

    def loss_and_grad(*args, **kwargs):
        budgets.append(kwargs.get("memory_budget"))
        return bptt.loss_and_grad(*args, **kwargs)

    def three_steps(config):
        trainer = Trainer.start(
            config, **({} if step == "whole" else {"loss_and_grad": loss_and_grad})
        )
        for _ in range(3):
            trainer.step()
        return trainer

    assert_same_state(three_steps(with_budget(long_config)), three_steps(long_config))
    if step == "in parts":
        assert budgets == [72 * 1024] * 3 + [None] * 3


def test_bptt_train_memory_budget_writes_bitwise_the_checkpoint_of_a_run_without_it(
    tmp_path, long_config
):
    options = ["--text", long_config.text, "--hidden", "16", "--seq-len", "600", "--batch", "3",
               "--steps", "3", "--threads", "1", "--quiet"]  # fmt: skip
    runs = {"budgeted": ["--memory-budget", MEMORY_BUDGET], "unbudgeted": []}
    for name, budget in runs.items():
        result = bptt_command("train", *options, "--out", str(tmp_path / name), *budget)
        assert result.returncode == 0, result.stderr
    budgeted, unbudgeted = (checkpoint.read_run(tmp_path / name) for name in runs)
    assert budgeted.config == with_budget(unbudgeted.config)
    for name, value in unbudgeted.params.items():
        np.testing.assert_array_equal(budgeted.params[name], value, err_msg=name)  # bitwise


def test_a_resume_may_change_the_memory_budget_and_trains_as_one_run(tmp_path, long_config):
    one_go = training.train(long_config, tmp_path / "one", Budget(steps=6), show_progress=False)
    training.train(with_budget(long_config), tmp_path / "two", Budget(steps=3), show_progress=False)
    resumed = training.resume(
        tmp_path / "two", Budget(steps=6), settings={"memory_budget": "100KiB"}, show_progress=False
    )
    assert_same_state(resumed.trainer, one_go.trainer)
    assert checkpoint.read_run(tmp_path / "two").config.memory_budget == "100KiB"


def test_a_checkpoint_from_before_layers_and_schedules_resumes_as_one_constant_layer_at_its_rate(
    tmp_path, config
):
    training.train(config, tmp_path / "run", Budget(steps=2), show_progress=False)
    path = checkpoint.checkpoint_path(tmp_path / "run")
    with np.load(path) as archive:
        contents = {name: archive[name] for name in archive.files}
    metadata = json.loads(str(contents.pop(checkpoint.METADATA_KEY)))
    for setting in ("layers", "init", "lr_schedule"):
        del metadata["config"][setting]
    metadata["config"]["lr"] = None  # the default rate of its time, which it did not record
    del metadata["schedule_horizon"]
    np.savez(path, **{checkpoint.METADATA_KEY: np.array(json.dumps(metadata))}, **contents)
    saved = checkpoint.read_run(tmp_path / "run")
    assert (saved.config.layers, saved.config.init, saved.config.lr_schedule) == (
        1,
        "uniform",
        "constant",
    )
    assert saved.horizon == saved.budget
    assert saved.config.lr == checkpoint.EARLIER_DEFAULT_LEARNING_RATES["adam"] == 0.002
    resumed = training.resume(tmp_path / "run", Budget(steps=3), show_progress=False)
    assert resumed.trainer.step_count == 3


def test_a_checkpoint_from_before_memory_budgets_resumes_without_one(tmp_path, config):
    training.train(config, tmp_path / "run", Budget(steps=2), show_progress=False)
    path = checkpoint.checkpoint_path(tmp_path / "run")
    with np.load(path) as archive:
        contents = {name: archive[name] for name in archive.files}
    metadata = json.loads(str(contents.pop(checkpoint.METADATA_KEY)))
    del metadata["config"]["memory_budget"]
    np.savez(path, **{checkpoint.METADATA_KEY: np.array(json.dumps(metadata))}, **contents)
    assert checkpoint.read_run(tmp_path / "run").config.memory_budget is None
    resumed = training.resume(tmp_path / "run", Budget(steps=3), show_progress=False)
    assert resumed.trainer.step_count == 3


def test_a_resume_keeps_the_logged_rows_up_to_its_step_of_a_long_log(tmp_path, monkeypatch):
    # A long run's log, read a row at a time; its plot thinned to at most this many points.
    monkeypatch.setattr(metrics, "MAX_PLOTTED_POINTS", 100)
    rows = [f"{step},{step / 10:.3f},{2 + 1 / step:.5f},,{1e4:.1f}" for step in range(1, 50_001)]
    rows[100] += "\n"  # a blank line is skipped
    (tmp_path / "metrics.csv").write_text("\n".join([",".join(metrics.COLUMNS), *rows]) + "\n")
    with metrics.MetricsLog(tmp_path, resume_step=30_000) as log:
        log.write(30_001, 1.0, 2.5, 2.6, 1e4)
    with open(tmp_path / "metrics.csv", newline="") as file:
        kept = list(csv.DictReader(file))
    assert [int(row["step"]) for row in kept] == list(range(1, 30_002))
    assert kept[-1]["validation_bpc"] == "2.60000"
    assert metrics.plot(tmp_path).stat().st_size > 0
    assert {path.name for path in tmp_path.iterdir()} == {"metrics.csv", "metrics.png"}
