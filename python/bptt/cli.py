"""The command lines of `bptt train` and `bptt sample`: options in, a run or a sample out. The
library's errors name its settings (`SettingError`); here they name this command's options."""

import argparse
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import numpy as np

from bptt import _api, checkpoint, memory, run_directory, sampling, training
from bptt.errors import OutputLost, SettingError, UsageError, check_integer, check_number
from bptt.lr_schedule import LR_SCHEDULES, WARMUP_STEPS
from bptt.optimizers import DEFAULT_LEARNING_RATES, OPTIMIZERS
from bptt.stack import INITS
from bptt.training_config import (
    ACTIVATIONS,
    COMPUTE_DTYPES,
    DEFAULT_MINUTES,
    DTYPES,
    Budget,
    TrainConfig,
)

# the shell's status for a command ended by a signal: 128 + its number
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

# The option of each setting the library's errors name: a run's settings (TrainConfig's and
# Budget's fields, the option spelled as argparse reads it), its directory, a sample's prime.
OPTIONS = {
    **{
        field.name: "--" + field.name.replace("_", "-")
        for field in (*fields(TrainConfig), *fields(Budget))
    },
    run_directory.NEW_RUN: "--out",
    run_directory.RESUMED_RUN: "--resume",
    run_directory.SAMPLED_RUN: "DIR",
    "prime": "--prime",
}


def option(setting: str) -> str:
    """The option of a setting; this module's own checks name their options already."""
    return OPTIONS.get(setting, setting)


@contextmanager
def _errors_naming_options() -> Iterator[None]:
    """The library's SettingErrors as UsageErrors naming the options that gave the settings."""
    try:
        yield
    except SettingError as error:
        raise UsageError(error.describe(option)) from None


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    defaults = TrainConfig()
    # every setting defaults to None here, so that a resume can tell which ones were given
    parser.add_argument(
        "--text",
        metavar="FILE",
        help="a UTF-8 text (default: the Python standard library's "
        "own *.py sources, read from this interpreter's installation)",
    )
    # directories stay strings here: Path("") would be the current directory, which the
    # library refuses as an empty name
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="where checkpoint, metrics.csv and plot go (default: runs/<time>)",
    )
    parser.add_argument(
        "--resume", metavar="DIR", help="continue the run in DIR, with its own settings"
    )
    parser.add_argument(
        "--hidden", type=int, help=f"hidden units of each layer (default {defaults.hidden})"
    )
    parser.add_argument(
        "--layers",
        type=int,
        help=f"Elman layers, each feeding the next (default {defaults.layers})",
    )
    parser.add_argument(
        "--seq-len", type=int, help=f"characters per stream and step (default {defaults.seq_len})"
    )
    parser.add_argument("--batch", type=int, help=f"parallel streams (default {defaults.batch})")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--steps", type=int, help="stop when the run has taken this many steps in all"
    )
    budget.add_argument(
        "--minutes",
        type=float,
        help="stop after this many minutes "
        f"(default {DEFAULT_MINUTES:g} when --steps is not given)",
    )
    parser.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), help=f"(default {defaults.optimizer})"
    )
    rates = ", ".join(f"{name} {lr:g}" for name, lr in DEFAULT_LEARNING_RATES.items())
    parser.add_argument("--lr", type=float, help=f"learning rate (default: {rates})")
    parser.add_argument(
        "--init",
        choices=INITS,
        help="of the recurrent weights: uniform in ±1/sqrt(hidden) as torch.nn.RNN, or a random "
        f"orthogonal matrix (default {defaults.init})",
    )
    parser.add_argument(
        "--lr-schedule",
        choices=LR_SCHEDULES,
        help=f"cosine: {WARMUP_STEPS} steps of linear warm-up, then a cosine decay to 0 at the "
        f"end of --steps or --minutes (default {defaults.lr_schedule})",
    )
    parser.add_argument(
        "--clip", type=float, help=f"largest global gradient norm (default {defaults.clip:g})"
    )
    parser.add_argument(
        "--activation", choices=ACTIVATIONS, help=f"(default {defaults.activation})"
    )
    parser.add_argument("--dtype", choices=DTYPES, help=f"(default {defaults.dtype})")
    parser.add_argument(
        "--compute-dtype",
        choices=COMPUTE_DTYPES,
        help="the products' operands: bfloat16 (with --dtype float32) rounds them to bfloat16 "
        "and accumulates in float32 (default: --dtype's own)",
    )
    parser.add_argument(
        "--seed", type=int, help=f"for the initial weights and samples (default {defaults.seed})"
    )
    parser.add_argument("--threads", type=int, help="threads of the core (default: all cores)")
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        help="working memory of a step's gradients at most, e.g. 64MiB, 2GB or bytes: some "
        "hidden states are computed again rather than kept, for the same results (default: "
        "every state kept; a resume may change it)",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        metavar="STEPS",
        help=f"validate and print a sample (default {defaults.eval_every})",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="STEPS",
        help=f"(default {defaults.checkpoint_every})",
    )
    parser.add_argument(
        "--log-every",
        type=int,
        metavar="STEPS",
        help=f"rows of metrics.csv (default {defaults.log_every})",
    )
    parser.add_argument(
        "--validation-chars",
        type=int,
        metavar="N",
        help=f"held-out characters scored at each validation (default {defaults.validation_chars})",
    )
    parser.add_argument(
        "--sample-chars",
        type=int,
        metavar="N",
        help=f"length of the printed samples (default {defaults.sample_chars})",
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing but errors: no header, progress bar, samples or summary",
    )


def _set_threads(threads: int | None) -> None:
    if threads is not None:
        _api.set_num_threads(check_integer("--threads", threads, 1, _api.MAX_THREADS))


def run_train(args: argparse.Namespace) -> int:
    """The run's exit status: 0 when it spent its budget, 128 + the signal's number when Ctrl-C
    or SIGTERM stopped it (after a step, with a checkpoint) or SIGTERM ended its start-up, 1
    when standard output took no more text (after a step, with a checkpoint)."""
    try:
        with training.sigterm_terminates():
            outcome = _train(args)
    except training.Terminated:
        print("bptt train: terminated", file=sys.stderr)
        return EXIT_TERMINATED
    if outcome.output_lost is not None:
        trainer = outcome.trainer
        assert trainer.last_checkpoint is not None  # a run ends with its checkpoint
        raise OutputLost(
            outcome.output_lost,
            f"stopped at step {trainer.step_count} with a checkpoint; continue with: bptt train "
            f"--resume {trainer.last_checkpoint[0].parent}",
        )
    return 128 + outcome.stopped_by if outcome.stopped_by is not None else 0


def _train(args: argparse.Namespace) -> training.Outcome:
    names = {field.name for field in fields(TrainConfig)} - {"text"}
    settings = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    with _errors_naming_options():
        budget = Budget(args.steps, args.minutes).check()
        _set_threads(args.threads)
        show = not args.quiet
        if args.resume is not None:
            if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
                raise UsageError("--out: a resumed run stays in its own directory (--resume DIR)")
            return training.resume(
                args.resume, budget, text=args.text, settings=settings, show_progress=show
            )
        config = TrainConfig(**settings, **({} if args.text is None else {"text": args.text}))
        out = Path("runs") / time.strftime("%Y%m%d-%H%M%S") if args.out is None else args.out
        return training.train(config, out, budget, show_progress=show)


def add_sample_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="DIR", help="a bptt train run directory")
    parser.add_argument(
        "--length",
        type=int,
        default=500,
        help=f"characters (default 500, at most {sampling.MAX_LENGTH:,})",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.8,
        help="below 1: safer choices, above 1: wilder (default 0.8)",
    )
    parser.add_argument("--prime", default="", help="text to start from (default: a newline)")
    parser.add_argument(
        "--seed", type=int, help="the same seed gives the same text (default: a fresh one)"
    )
    parser.add_argument("--threads", type=int, help="threads of the core (default: all cores)")


def run_sample(args: argparse.Namespace) -> int:
    with _errors_naming_options():
        check_integer("--length", args.length, 0, sampling.MAX_LENGTH)
        check_number("--temperature", args.temperature)
        if args.seed is not None:
            check_integer("--seed", args.seed, 0)
        _set_threads(args.threads)
        run_dir = run_directory.directory(args.run_dir, run_directory.SAMPLED_RUN)
        params, vocabulary, activation = checkpoint.load_model(run_dir)
        sampling.check_prime(args.prime, vocabulary)
        hidden_size, itemsize = params["W"].shape[0], params["W"].itemsize
        needed = sampling.memory_needed(
            hidden_size, len(vocabulary), itemsize, args.length, len(args.prime)
        )
        memory.check_available(needed, f"a sample of --length {args.length}")
        text = sampling.generate(
            params,
            vocabulary,
            args.length,
            np.random.default_rng(args.seed),
            temperature=args.temperature,
            prime=args.prime,
            activation=activation,
        )
    try:
        print(args.prime + text, flush=True)
    except OSError as error:
        raise OutputLost(error) from None
    return 0
