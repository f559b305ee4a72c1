"""Every bad input to `bptt train` and `bptt sample` gets one line on stderr naming the problem
and exit status 2, never a traceback; and a failed run never writes a checkpoint of non-finite
values, and says which step the checkpoint on disk holds."""

import json
import math
import os
import time

import numpy as np
import pytest
from command_line import assert_one_line_error, bptt_command

import bptt
from bptt import __main__, checkpoint, corpus, stack, training, training_config
from bptt.errors import UsageError
from bptt.trainer import Trainer, TrainingDiverged, corpus_for
from bptt.training_config import Budget, TrainConfig
from bptt.training_memory import memory_needed, step_memory

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
SMALL = ["--hidden", "8", "--seq-len", "10", "--batch", "3", "--threads", "1"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A text, a run trained on it, and texts that are bad in one way each."""
    root = tmp_path_factory.mktemp("bad_inputs")
    text = root / "text.txt"
    text.write_text(TEXT)
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    config = TrainConfig(text=str(text), hidden=8, seq_len=10, batch=3)
    training.train(config, root / "run", Budget(steps=3), show_progress=False)
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
        ("--steps", "0", f"--steps: expected an integer in [1, {2**62}]"),
        ("--steps", str(2**63 + 10), f"--steps: expected an integer in [1, {2**62}]"),
        ("--minutes", "-1", "--minutes: expected a number in (0, 525600]"),
        ("--optimizer", "rmsprop", "--optimizer: invalid choice"),
        ("--threads", "0", "--threads: expected an integer in [1, 1024]"),
        ("--threads", "3000000000", "--threads: expected an integer in [1, 1024]"),
        ("--minutes", "1e308", "--minutes: expected a number in (0, 525600]"),
        ("--sample-chars", str(10**13), "--sample-chars: expected an integer in [0, 10000000]"),
        ("--memory-budget", "12 parsecs", "--memory-budget: expected a size such as '512MiB'"),
        ("--memory-budget", "0", "--memory-budget: expected at least 1 byte, got '0'"),
        (
            "--memory-budget",
            "1KiB",
            (
                "--memory-budget 1KiB: a step of --batch 3 streams of --seq-len 10, --hidden 8 "
                "and a vocabulary of 25 needs at least"
            ),
        ),
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


@pytest.mark.parametrize("command", ["sample", "train --resume"])
def test_a_run_directory_that_is_a_file_is_said_to_be_one(run_copy, command):
    run_file = checkpoint.checkpoint_path(run_copy)
    result = bptt_command(*command.split(), str(run_file))
    assert_one_line_error(result, command.split()[0], "checkpoint.npz: not a directory")


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


@pytest.mark.parametrize(
    "row",
    ["2.5,x,,,", "-1,1.0,2.5,,", f"{-(10**400)},1.0,2.5,,", f"{2**62 + 1},1.0,2.5,,"],
    ids=["not a step", "a negative step", "a step beyond a float", "a step beyond the last"],
)
def test_a_resume_with_a_damaged_metrics_log_is_refused_and_leaves_the_checkpoint(run_copy, row):
    before = checkpoint.checkpoint_path(run_copy).read_bytes()
    (run_copy / "metrics.csv").write_text(
        f"step,time,train_bpc,validation_bpc,chars_per_s\n{row}\n"
    )
    result = bptt_command("train", "--resume", str(run_copy), "--steps", "5")
    assert_one_line_error(result, "train", "metrics.csv", "corrupt metrics log", "line 2")
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


def test_too_many_threads_for_a_sample(files):
    result = bptt_command("sample", str(files / "run"), "--threads", "3000000000")
    assert_one_line_error(result, "sample", "--threads: expected an integer in [1, 1024]")


def test_too_many_threads_for_a_resume(run_copy):
    result = bptt_command("train", "--resume", str(run_copy), "--threads", "3000000000")
    assert_one_line_error(result, "train", "--threads: expected an integer in [1, 1024]")


@pytest.mark.parametrize("length", [str(10**13), str(2**63)])
def test_a_sample_length_beyond_the_bound(files, length):
    result = bptt_command("sample", str(files / "run"), "--length", length)
    assert_one_line_error(
        result, "sample", f"--length: expected an integer in [0, 10000000], got {length}"
    )


# -- outputs that cannot be written: refused before the first step ----------------------------


@pytest.mark.parametrize(
    ("out", "phrase"),
    [
        ("a_file", "is a file, expected a directory"),
        ("a_file/run", "Not a directory"),
        ("y" * 300, "File name too long"),
    ],
)
def test_an_out_that_cannot_be_a_directory(files, tmp_path, out, phrase):
    (tmp_path / "a_file").write_text("not a directory")
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, "--steps", "2",
                          "--out", str(tmp_path / out))  # fmt: skip
    assert_one_line_error(result, "train", f"--out {tmp_path / out}", phrase)


@pytest.mark.parametrize(
    ("command", "named"),
    [("train --out", "--out"), ("train --resume", "--resume"), ("sample", "DIR")],
)
def test_an_empty_directory_name_is_not_the_current_directory(run_copy, command, named):
    # a run in the current directory, which an empty name must not pick silently
    result = bptt_command(*command.split(), "", "--threads", "1", cwd=run_copy)
    assert_one_line_error(result, command.split()[0], f"{named}: expected a directory, got ''")


def test_an_out_whose_metrics_csv_is_a_directory(files, tmp_path):
    (tmp_path / "run" / "metrics.csv").mkdir(parents=True)
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, "--steps", "2",
                          "--out", str(tmp_path / "run"))  # fmt: skip
    assert_one_line_error(result, "train", "--out", "metrics.csv is a directory")
    assert not checkpoint.checkpoint_path(tmp_path / "run").exists()


def test_a_resume_may_name_its_directory_as_out_too_however_spelled(run_copy):
    result = bptt_command("train", "--resume", "run", "--out", str(run_copy), "--steps", "4",
                          "--quiet", "--threads", "1", cwd=run_copy.parent)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert checkpoint.read_run(run_copy).step == 4


# -- sizes too large: refused at once, before allocating ----------------------------------------


def test_a_run_larger_than_the_memory_is_refused_before_allocating(files):
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, "--steps", "2",
                          "--hidden", "1099511627776")  # fmt: skip
    assert_one_line_error(result, "train", "--hidden 1099511627776", "GB of memory")


def test_a_run_of_more_layers_than_the_memory_holds_is_refused_at_once(files):
    # Counted, not listed: a billion layers' parameter shapes would take minutes and gigabytes.
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, "--steps", "2",
                          "--layers", "1000000000")  # fmt: skip
    assert_one_line_error(result, "train", "--layers 1000000000, --hidden 8", "GB of memory")


def test_the_parameter_count_is_that_of_the_stacks_parameter_shapes():
    for layers in (1, 2, 5):
        shapes = stack.parameter_shapes(7, 5, 3, layers)
        assert stack.parameter_count(7, 5, 3, layers) == sum(math.prod(s) for s in shapes.values())


def test_the_memory_a_run_needs_is_compared_with_the_memory_available(files, monkeypatch):
    config = TrainConfig(text=str(files / "text.txt"), hidden=8, seq_len=10, batch=3)
    needed = memory_needed(config, corpus_for(config))
    monkeypatch.setattr(bptt._core, "available_memory_bytes", lambda: needed - 1)
    with pytest.raises(UsageError, match=r"needs about .* GB of memory"):
        Trainer.start(config)
    monkeypatch.setattr(bptt._core, "available_memory_bytes", lambda: needed)
    Trainer.start(config)  # does not raise


def test_the_memory_a_budgeted_run_needs_counts_its_plan_not_every_state(files):
    unbudgeted = TrainConfig(text=str(files / "text.txt"), hidden=64, seq_len=1000, batch=1)
    budgeted = TrainConfig(**{**unbudgeted.__dict__, "memory_budget": "200KiB"})
    vocabulary_size = len(corpus_for(unbudgeted).vocabulary)
    plan = bptt.memory_plan(1000, 1, vocabulary_size, 64, vocabulary_size, tokens=True,
                            memory_budget="200KiB")  # fmt: skip
    assert plan.schedule == "segments"
    assert step_memory(budgeted, vocabulary_size) == plan.bytes <= 200 * 1024
    assert step_memory(unbudgeted, vocabulary_size) >= 1000 * 64 * 4  # every state kept
    assert memory_needed(budgeted, corpus_for(budgeted)) < memory_needed(
        unbudgeted, corpus_for(unbudgeted)
    )


@pytest.mark.parametrize(
    ("message", "shown"),
    [("Unable to allocate 72.8 TiB for an array", None), ("", "no details")],
    ids=["NumPy's", "none"],
)
def test_running_out_of_memory_anyway_is_one_line(files, monkeypatch, capsys, message, shown):
    def allocate_too_much(*args, **kwargs):
        raise MemoryError(message)

    monkeypatch.setattr(training, "train", allocate_too_much)
    status = __main__.main(["train", "--text", str(files / "text.txt"), "--quiet"])
    stderr = capsys.readouterr().err
    assert status == 2
    assert stderr.splitlines() == [
        f"bptt train: error: out of memory ({shown or message}); try smaller sizes"
    ]


@pytest.mark.parametrize("option", ["--seq-len", "--batch"])
def test_a_huge_seq_len_or_batch_is_refused_at_once(files, option):
    start = time.perf_counter()
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, option,
                          str(10**12))  # fmt: skip
    assert_one_line_error(result, "train", "too few", f"{option} {10**12}")
    assert time.perf_counter() - start < 30


def test_the_shortest_text_length_is_found_at_once_for_any_size():
    start = time.perf_counter()
    length = corpus.shortest_text_length(10**9, 10**9)
    assert time.perf_counter() - start < 0.1
    kept = length - corpus.validation_length(length)
    assert kept >= 10**18 + 1 > (length - 1) - corpus.validation_length(length - 1)


# -- divergence: an error, never a checkpoint of infinities --------------------------------------


def test_a_diverging_run_stops_with_an_error_and_writes_no_checkpoint(files, tmp_path):
    result = bptt_command("train", "--text", str(files / "text.txt"), *SMALL, "--steps", "5",
                          "--lr", "1e308", "--checkpoint-every", "1", "--out", str(tmp_path / "run"),
                          "--quiet")  # fmt: skip
    assert_one_line_error(
        result, "train", "training diverged at step 1", "--lr", "no checkpoint was written"
    )
    assert not checkpoint.checkpoint_path(tmp_path / "run").exists()


def test_a_resume_that_diverges_leaves_the_checkpoint_as_it_was(run_copy):
    # a run that checkpoints every step, and whose next update overflows
    rewrite_checkpoint(
        run_copy, metadata=lambda m: m["config"].update(lr=1e308, checkpoint_every=1)
    )
    before = checkpoint.checkpoint_path(run_copy).read_bytes()
    result = bptt_command("train", "--resume", str(run_copy), "--steps", "10", "--quiet")
    assert_one_line_error(
        result,
        "train",
        "training diverged at step 4",
        f"last good checkpoint: step 3, {checkpoint.checkpoint_path(run_copy)}",
    )
    assert checkpoint.checkpoint_path(run_copy).read_bytes() == before


def test_a_resume_that_diverges_after_checkpointing_keeps_its_last_finite_checkpoint_and_names_it(
    run_copy, monkeypatch
):
    # Its checkpoints of steps 4 and 6 are finite states of the same run: kept, and the error
    # says which one is on disk.
    rewrite_checkpoint(run_copy, metadata=lambda m: m["config"].update(checkpoint_every=2))
    take_step = Trainer.step

    def step_whose_loss_is_nan_from_step_8(trainer):
        if trainer.step_count + 1 == 8:
            trainer.params["W"][0, 0] = math.nan  # every later loss and gradient is NaN
        return take_step(trainer)

    monkeypatch.setattr(Trainer, "step", step_whose_loss_is_nan_from_step_8)
    path = checkpoint.checkpoint_path(run_copy)
    with pytest.raises(TrainingDiverged) as diverged:
        training.resume(run_copy, Budget(steps=10), show_progress=False)
    assert str(diverged.value).startswith("training diverged at step 8: the loss")
    assert str(diverged.value).endswith(f"(last good checkpoint: step 6, {path})")
    assert checkpoint.read_run(run_copy).step == 6  # which refuses non-finite values


def test_a_resume_that_fails_after_its_steps_leaves_the_checkpoint_as_it_was(run_copy, monkeypatch):
    def failing_validation(trainer):
        raise UsageError("the final validation failed")

    monkeypatch.setattr(Trainer, "validation_bpc", failing_validation)
    before = checkpoint.checkpoint_path(run_copy).read_bytes()
    with pytest.raises(UsageError, match="the final validation failed"):
        training.resume(run_copy, Budget(steps=4), show_progress=False)  # one step, then fails
    assert checkpoint.checkpoint_path(run_copy).read_bytes() == before


# -- corrupt checkpoints: each field checked on load ------------------------------------------


def rewrite_checkpoint(run, arrays=None, metadata=None, metadata_json=None):
    """Replace the run's checkpoint by a copy changed by arrays(dict) and metadata(dict), or
    with metadata_json as its metadata."""
    path = checkpoint.checkpoint_path(run)
    with np.load(path) as archive:
        contents = {name: archive[name].copy() for name in archive.files}
    stored = json.loads(str(contents.pop(checkpoint.METADATA_KEY)))
    if arrays:
        arrays(contents)
    if metadata:
        metadata(stored)
    text = json.dumps(stored) if metadata_json is None else metadata_json
    np.savez(path, **{checkpoint.METADATA_KEY: np.array(text)}, **contents)


def set_element(name, value):
    def change(arrays):
        arrays[name].flat[0] = value

    return change


def set_field(name, value, within=None):
    return lambda metadata: (metadata[within] if within else metadata).update({name: value})


@pytest.mark.parametrize(
    ("damage", "phrase"),
    [
        ({"arrays": set_element("params.U", math.nan)}, "params.U holds NaN or infinity"),
        ({"arrays": set_element("params.V", math.inf)}, "params.V holds NaN or infinity"),
        ({"arrays": set_element("hidden", math.nan)}, "hidden holds NaN or infinity"),
        ({"arrays": set_element("adam.exp_avg.W", math.nan)}, "adam.exp_avg.W holds NaN"),
        ({"arrays": set_element("adam.exp_avg_sq.W", -1.0)}, "adam.exp_avg_sq.W holds negative"),
        ({"metadata": set_field("optimizer_steps", -1)}, "optimizer_steps: expected an integer"),
        ({"metadata": set_field("optimizer_steps", 0)}, "optimizer_steps 0 is not the step count"),
        ({"metadata": set_field("text", 5, within="config")}, "config.text: expected a file name"),
        ({"metadata": set_field("text", None, within="config")}, "config.text: expected a file"),
        ({"metadata": set_field("step", 2.7)}, f"step: expected an integer in [0, {2**62}], got"),
        ({"metadata": set_field("step", 2**63 - 1)}, f"step: expected an integer in [0, {2**62}]"),
        (
            {"metadata": set_field("layers", 10**9, within="config")},
            "config.layers 1000000000: its arrays are those of fewer layers",
        ),
        ({"metadata": set_field("elapsed_seconds", math.nan)}, "elapsed_seconds: expected"),
        ({"metadata": set_field("budget", {"steps": None, "minutes": 1e308})}, "budget.minutes"),
        # JSON integers beyond any float, quoted with their middle elided
        (
            {"metadata": set_field("clip", 10**400, within="config")},
            "config.clip: expected a finite number > 0, got 1000",
        ),
        ({"metadata": set_field("budget", {"steps": None, "minutes": 10**400})}, "(401 char"),
        (
            {"metadata": set_field("memory_budget", True, within="config")},
            "config.memory_budget: expected None, an integer number of bytes",
        ),
        ({"metadata": set_field("rng_state", "seed 0")}, "rng_state"),
        ({"metadata_json": "[" * 100_000 + "]" * 100_000}, "nested too deep"),
    ],
    ids=lambda value: None if isinstance(value, dict) else value.split(":")[0][:30],
)
@pytest.mark.parametrize("command", ["sample", "train --resume"])
def test_a_checkpoint_with_an_invalid_field_is_corrupt_and_left_as_it_was(
    run_copy, damage, phrase, command
):
    rewrite_checkpoint(run_copy, **damage)
    before = checkpoint.checkpoint_path(run_copy).read_bytes()
    result = bptt_command(*command.split(), str(run_copy), "--threads", "1")
    assert_one_line_error(result, command.split()[0], "corrupt checkpoint", phrase)
    assert checkpoint.checkpoint_path(run_copy).read_bytes() == before


def test_a_schedules_horizon_beyond_a_year_reads_back(run_copy):
    # a resume given a year's minutes after a run's own time: its horizon counts both
    horizon = {"steps": None, "minutes": 600.0 + training_config.MAX_MINUTES}
    rewrite_checkpoint(run_copy, metadata=set_field("schedule_horizon", horizon))
    assert checkpoint.read_run(run_copy).horizon == Budget(**horizon)
    result = bptt_command("sample", str(run_copy), "--length", "5", "--threads", "1")
    assert result.returncode == 0, result.stderr


def test_a_huge_seq_len_in_a_checkpoint_is_refused_at_once(run_copy):
    def seq_len_of_a_trillion(metadata):
        metadata["config"]["seq_len"] = 10**12
        metadata["position"] = 0

    start = time.perf_counter()
    rewrite_checkpoint(run_copy, metadata=seq_len_of_a_trillion)
    result = bptt_command("train", "--resume", str(run_copy))
    assert_one_line_error(result, "train", "too few", f"--seq-len {10**12}")
    assert time.perf_counter() - start < 30


# -- sampling ------------------------------------------------------------------------------------


def test_a_tiny_temperature_draws_the_most_likely_characters_without_warnings(files):
    def greedy(temperature, seed):
        result = bptt_command("sample", str(files / "run"), "--temperature", temperature,
                              "--seed", seed, "--length", "40", "--prime", "def")  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""
        return result.stdout

    # far below the smallest normal float: logits / temperature alone would overflow to inf
    assert greedy("1e-320", "1") == greedy("1e-300", "2")


# -- run directories holding something other than files ----------------------------------------


@pytest.mark.parametrize("resumed", [False, True], ids=["new run", "resumed run"])
def test_a_metrics_log_that_is_a_pipe_is_refused_before_the_first_step(run_copy, files, resumed):
    # Opening a pipe to write blocks until a reader comes: the run would hang.
    if resumed:
        (run_copy / "metrics.csv").unlink(missing_ok=True)
        os.mkfifo(run_copy / "metrics.csv")
        result = bptt_command("train", "--resume", str(run_copy), "--steps", "5")
    else:
        new_run = run_copy.parent / "new"
        new_run.mkdir()
        os.mkfifo(new_run / "metrics.csv")
        result = bptt_command("train", "--out", str(new_run), "--text", str(files / "text.txt"),
                              *SMALL, "--steps", "2")  # fmt: skip
    assert_one_line_error(result, "train", "metrics.csv is a pipe, expected a file")


def test_a_sample_from_a_model_whose_logits_overflow_is_refused(run_copy):
    # Finite parameters whose products are not: the sample would be one character repeated.
    def overflowing(arrays):  # every h_t = tanh(100) = 1, each logit 3e38 · 8
        arrays["params.b"].fill(100.0)
        arrays["params.V"].fill(3e38)

    rewrite_checkpoint(run_copy, arrays=overflowing)
    result = bptt_command("sample", str(run_copy), "--length", "20")
    assert_one_line_error(result, "sample", "logits are not finite at character 0")


def test_an_error_quoting_a_checkpoints_text_name_with_control_characters_stays_one_line(
    run_copy,
):
    rewrite_checkpoint(run_copy, metadata=set_field("text", "a\nb\x1b[2Jc.txt", within="config"))
    result = bptt_command("train", "--resume", str(run_copy), "--steps", "5")
    assert_one_line_error(result, "train", "a\\nb\\x1b[2Jc.txt")


def test_a_checkpoint_is_written_to_a_new_file_of_its_own_with_the_usual_permissions(run_copy):
    # A name planted where the temporary file once went (.checkpoint.npz.PID.tmp) is not
    # followed; the checkpoint has the permissions an open() under this umask gives.
    victim = run_copy.parent / "victim.txt"
    victim.write_text("untouched")
    for pid in range(os.getpid(), os.getpid() + 2000):
        (run_copy / f".checkpoint.npz.{pid}.tmp").symlink_to(victim)
    saved = checkpoint.read_run(run_copy)
    mask = os.umask(0)
    os.umask(mask)
    path = checkpoint.save(run_copy, {"x": np.zeros(3)}, {"step": saved.step})
    assert victim.read_text() == "untouched"
    assert not path.is_symlink()
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask
