"""A `bptt train` run: `train` starts one in a directory, `resume` continues one, and `run` takes
the trainer's steps until the budget is spent, Ctrl-C or SIGTERM, with validation and a sample
every so often, metrics.csv, atomic checkpoints, and a plot at the end."""

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bptt import metrics, run_directory
from bptt.errors import SettingError
from bptt.progress import Progress
from bptt.step_thread import StepThread
from bptt.trainer import Trainer, TrainingDiverged
from bptt.training_config import Budget, TrainConfig

NO_BUDGET = Budget()  # neither steps nor minutes: the default budget, or a resumed run's own


class Outcome(NamedTuple):
    trainer: Trainer
    stopped_by: signal.Signals | None  # SIGINT (Ctrl-C) or SIGTERM; None: the budget was spent
    # what stopped the run short of its budget when standard output took no more text
    output_lost: OSError | None = None

    @property
    def finished(self) -> bool:
        return self.stopped_by is None and self.output_lost is None


class Terminated(BaseException):
    """SIGTERM where a run cannot wait for the end of its step: a second one, or one outside the
    steps (see `sigterm_terminates`). Like KeyboardInterrupt for Ctrl-C, it unwinds at once,
    through every `finally` (a checkpoint's temporary file is removed), and no `except
    Exception` stops it."""


@contextmanager
def sigterm_terminates() -> Iterator[None]:
    """Within it, SIGTERM raises Terminated (a run's steps, `run`, stop after a whole step
    instead), rather than kill the process at once."""

    def terminate(signum, frame):
        raise Terminated

    with _handling({signal.SIGTERM: terminate}):
        yield


def train(
    config: TrainConfig, run_dir, budget: Budget = NO_BUDGET, *, show_progress: bool = True
) -> Outcome:
    """A new run in run_dir, which must hold no checkpoint yet."""
    run_dir = run_directory.directory(run_dir, run_directory.NEW_RUN)
    budget.check()
    run_directory.check_new(run_dir)
    trainer = Trainer.start(config)
    run_directory.prepare(run_dir, run_directory.NEW_RUN)
    return run(trainer, run_dir, budget, show_progress=show_progress)


def resume(
    run_dir,
    budget: Budget = NO_BUDGET,
    *,
    text: str | None = None,
    settings: dict | None = None,
    show_progress: bool = True,
) -> Outcome:
    """Continue the run in run_dir, by default with the budget it was last given (steps: up to
    the same total; minutes: as many minutes again, or, on a cosine schedule, the minutes left
    to its horizon) and on its learning-rate schedule's place; a budget given re-plans the
    schedule to end with it."""
    run_dir = run_directory.directory(run_dir, run_directory.RESUMED_RUN)
    budget.check()
    trainer = Trainer.resume(run_dir, text, settings)
    taken = trainer.step_count
    if budget.steps is not None and budget.steps <= taken:
        raise SettingError.invalid(
            "steps",
            f"expected more than the {taken} steps the run in {run_dir} has taken (a run total), "
            f"got {budget.steps}",
        )
    if budget.steps is None and budget.minutes is None:
        budget = _resumed_budget(trainer)
        if budget.steps is not None and budget.steps <= taken:
            # Its budget spent: the run is left as it is, not validated and saved again.
            Progress(show_progress).write(
                f"the run in {run_dir} has finished its budget, at step {taken}: nothing to do "
                "(a budget given, --steps or --minutes, trains it further)"
            )
            return Outcome(trainer, None)
    else:
        trainer.horizon = _horizon(budget, trainer.elapsed_seconds)
    run_directory.prepare(run_dir, run_directory.RESUMED_RUN)
    return run(trainer, run_dir, budget, resumed=True, show_progress=show_progress)


def _horizon(budget: Budget, elapsed_seconds: float) -> Budget:
    """The end of a run given `budget` after `elapsed_seconds`, in run totals."""
    if budget.steps is not None or budget.minutes is None:
        return budget
    return Budget(minutes=elapsed_seconds / 60 + budget.minutes)


def _resumed_budget(trainer: Trainer) -> Budget:
    """The budget of a resume given none: the run's own, but for a cosine schedule over
    minutes, which ends with the minutes left to its horizon (none left: no step)."""
    horizon = trainer.horizon
    if trainer.config.lr_schedule == "constant" or horizon.minutes is None:
        return trainer.budget
    minutes_left = horizon.minutes - trainer.elapsed_seconds / 60
    if minutes_left > 0:
        return Budget(minutes=minutes_left)
    return Budget(steps=max(trainer.step_count, 1))


def run(
    trainer: Trainer,
    run_dir: Path,
    budget: Budget,
    *,
    resumed: bool = False,
    show_progress: bool = True,
) -> Outcome:
    """Train until the budget is spent, Ctrl-C, SIGTERM or standard output takes no more text
    (a closed pipe, a full disk). Checkpoints every `checkpoint_every` steps and at the end,
    validates every `eval_every` steps and at the end (not after a stop short of the budget); a
    signal after the steps waits for that end, which writes the checkpoint."""
    config = trainer.config
    trainer.budget = budget = budget.or_default()
    progress = Progress(show_progress)
    start = time.perf_counter()

    def elapsed() -> float:
        return trainer.elapsed_seconds + time.perf_counter() - start

    if trainer.horizon == Budget():  # a new run's: it ends with this budget
        trainer.horizon = _horizon(budget, trainer.elapsed_seconds)
    horizon = trainer.horizon

    def schedule_progress() -> float:
        """The fraction of the schedule's horizon done."""
        if horizon.steps is not None:
            return trainer.step_count / horizon.steps
        if horizon.minutes is not None:
            return elapsed() / (60 * horizon.minutes)
        return 0.0  # no horizon: the schedule stays at its start

    def out_of_budget() -> bool:
        if budget.steps is not None and trainer.step_count >= budget.steps:
            return True
        return budget.minutes is not None and time.perf_counter() - start >= budget.minutes * 60

    # Opened (and, on a resume, its rows checked) before anything is printed.
    log = metrics.MetricsLog(run_dir, resume_step=trainer.step_count if resumed else None)
    progress.started(trainer, run_dir, resumed)
    interval_nats, interval_steps, interval_chars, interval_seconds = 0.0, 0, 0, 0.0
    last_validation = None
    # overflow is checked for where it matters (a diverged step is an error): no NumPy warnings
    with (
        log,
        _StopOnSignals() as stop,
        StepThread() as step_thread,
        np.errstate(over="ignore", invalid="ignore"),
        _stop_if_diverged(trainer),
    ):
        with progress.bar(budget, trainer.step_count):
            while not out_of_budget() and stop.requested is None and not progress.output_lost:
                chars = trainer.streams.chunk(trainer.position)[0].size
                trainer.progress = schedule_progress()
                step_start = time.perf_counter()
                interval_nats += step_thread.run(trainer.step)
                interval_seconds += time.perf_counter() - step_start
                interval_steps += 1
                interval_chars += chars
                step = trainer.step_count
                validation = None
                if step % config.eval_every == 0:
                    validation = last_validation = _validate(trainer, progress, step_thread)
                if step % config.log_every == 0 or validation is not None:
                    train_bpc = interval_nats / interval_steps / math.log(2)
                    chars_per_s = interval_chars / interval_seconds
                    log.write(step, elapsed(), train_bpc, validation, chars_per_s)
                    progress.logged(step, train_bpc, chars_per_s)
                    interval_nats, interval_steps, interval_chars, interval_seconds = 0, 0, 0, 0
                if step % config.checkpoint_every == 0:
                    trainer.save(run_dir, elapsed())
                progress.stepped(start)
        # a signal during the last step stops nothing: the budget is spent, and the run ends
        # as one does (validated), which a resume would not do for it later
        spent = out_of_budget()
        stopped_by = None if spent else stop.requested
        output_lost = None if spent else progress.output_lost
        if (
            stopped_by is None
            and output_lost is None
            and (last_validation is None or trainer.step_count % config.eval_every)
        ):
            # the final sample must not advance the saved RNG: a resume samples what one run would
            rng_state = trainer.rng.bit_generator.state
            last_validation = _validate(trainer, progress, step_thread)
            trainer.rng.bit_generator.state = rng_state
            log.write(trainer.step_count, elapsed(), None, last_validation, None)
        plot = metrics.plot(run_dir)  # from every row: each is flushed as it is written
        # the checkpoint last: a run that fails before it leaves the previous one as it was
        path = trainer.save(run_dir, elapsed())
    progress.ended(trainer.step_count, stopped_by, last_validation, (path, log.path, plot), run_dir)
    return Outcome(trainer, stopped_by, output_lost)


def _validate(trainer: Trainer, progress: Progress, step_thread: StepThread) -> float:
    """The validation loss, shown with a sample (drawn, shown or not, so that the RNG advances
    alike in a quiet run)."""
    validation_bpc = step_thread.run(trainer.validation_bpc)
    sample_chars = trainer.config.sample_chars
    sample = trainer.sample(sample_chars) if sample_chars else None
    progress.validated(trainer.step_count, validation_bpc, sample)
    return validation_bpc


class _StopOnSignals:
    """Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step, so that the
    state saved is always the state after a whole step; a second signal interrupts at once
    (KeyboardInterrupt, Terminated)."""

    def __init__(self):
        self.requested: signal.Signals | None = None
        self._handling = _handling(dict.fromkeys((signal.SIGINT, signal.SIGTERM), self._handle))

    def _handle(self, signum, frame):
        if self.requested is None:
            self.requested = signal.Signals(signum)
        elif signum == signal.SIGINT:
            raise KeyboardInterrupt
        else:
            raise Terminated

    def __enter__(self):
        self._handling.__enter__()
        return self

    def __exit__(self, *exc):
        self._handling.__exit__(*exc)


@contextmanager
def _handling(handlers: dict[signal.Signals, Callable]) -> Iterator[None]:
    """The signals' handlers set, and the previous ones restored after; nothing outside the
    main thread, where signals are not Python's to handle."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


@contextmanager
def _stop_if_diverged(trainer: Trainer) -> Iterator[None]:
    """A finite gradient can still overflow the update (a huge lr); the core then refuses the
    parameters with a ValueError at their next use, which is the run diverging (a check after
    every step would cost microseconds; this costs nothing until then)."""
    try:
        yield
    except ValueError:
        if np.isfinite(trainer.params.vector).all():
            raise
        raise TrainingDiverged(
            trainer.step_count, "the parameters are", trainer.last_checkpoint
        ) from None
