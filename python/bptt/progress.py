"""What `bptt train` shows while it runs, on stdout through tqdm: the corpus and settings, a
progress bar (step, training loss, characters per second, time left), each validation with its
sample above the bar, and how the run ended. Nothing but the (disabled) bar when not shown."""

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bptt import _api
from bptt.corpus import STDLIB
from bptt.errors import UsageError
from bptt.training_config import Budget


class Progress:
    def __init__(self, show: bool):
        self.show = show
        self._bar: Any = None  # the tqdm bar while bar() runs
        # Why stdout took no more text (a closed pipe, `| head`; a full disk), after which
        # nothing more is written to it: a run stops after its step, with its checkpoint.
        self.output_lost: OSError | None = None
        if show:
            tqdm = _tqdm()
            self._write = lambda text: tqdm.write(text, file=sys.stdout)

    def write(self, text: str) -> None:
        if not self.show or self.output_lost is not None:
            return
        try:
            self._write(text)
            sys.stdout.flush()  # a write that fails fails here, not at exit
        except OSError as error:
            self.output_lost = error

    def started(self, trainer, run_dir: Path, resumed: bool) -> None:
        config, corpus = trainer.config, trainer.corpus
        source = "the standard library's sources" if config.text == STDLIB else config.text
        self.write(
            f"bptt train: {source}: {len(corpus.train_ids):,} characters to train on, "
            f"{len(corpus.validation_ids):,} held out, {len(corpus.vocabulary)} in the vocabulary\n"
            f"  {_layers(config)}{config.hidden} hidden units ({config.activation}), --batch "
            f"{config.batch} x --seq-len {config.seq_len}, {config.optimizer} lr "
            f"{config.learning_rate:g} ({config.lr_schedule}), clip {config.clip:g}, "
            f"{config.dtype}, {_api.get_num_threads()} thread(s)\n"
            + (
                f"  resuming {run_dir} at step {trainer.step_count}"
                if resumed
                else f"  into {run_dir}"
            )
        )

    @contextmanager
    def bar(self, budget: Budget, step_count: int) -> Iterator[None]:
        """The progress bar while the steps run: of steps when they decide the end, of seconds
        when minutes decide it."""
        self._by_steps = budget.steps is not None
        if budget.steps is not None:
            total, initial, unit = budget.steps, min(step_count, budget.steps), "step"
        else:
            assert budget.minutes is not None  # a budget has steps or minutes
            total, initial, unit = round(budget.minutes * 60), 0, "s"
        if not self.show:
            self._bar = _Unshown(total, initial)
        else:
            self._bar = _tqdm()(
                total=total,
                initial=initial,
                unit=unit,
                dynamic_ncols=True,
                bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
            )
        try:
            yield
        finally:
            self._bar.close()

    def logged(self, step: int, train_bpc: float, chars_per_s: float) -> None:
        self._bar.set_postfix_str(
            f"step {step}, train {train_bpc:.3f} bpc, {chars_per_s:,.0f} chars/s", refresh=False
        )

    def stepped(self, start: float) -> None:
        """One step more, or the seconds since `start` (a perf_counter time) when the bar counts
        seconds."""
        bar = self._bar
        bar.update(1 if self._by_steps else min(time.perf_counter() - start, bar.total) - bar.n)

    def validated(self, step: int, validation_bpc: float, sample: str | None) -> None:
        if sample is None:
            self.write(f"step {step}: validation {validation_bpc:.3f} bpc")
            return
        self.write(
            f"---- step {step}: validation {validation_bpc:.3f} bpc; sample: ----\n{sample}\n----"
        )

    def ended(
        self,
        step: int,
        stopped_by: signal.Signals | None,
        validation_bpc: float | None,
        outputs: tuple[Path, Path, Path | None],
        run_dir: Path,
    ) -> None:
        """stopped_by: the signal that stopped the run, or None when it finished its budget;
        outputs: the checkpoint, metrics.csv and the plot (None without matplotlib)."""
        checkpoint, metrics, plot = outputs
        if stopped_by is None:
            what = "finished"
        else:
            what = "stopped by " + ("Ctrl-C" if stopped_by == signal.SIGINT else stopped_by.name)
        self.write(
            f"{what} at step {step}"
            + ("" if validation_bpc is None else f", validation {validation_bpc:.3f} bpc")
            + f"; checkpoint {checkpoint}, metrics {metrics}"
            + (f", plot {plot}" if plot else ", no plot (matplotlib is not installed)")
        )
        if stopped_by is not None:
            self.write(f"continue with: bptt train --resume {run_dir}")


def _layers(config) -> str:
    """'3 layers of ' for a stack; nothing for one layer."""
    return f"{config.layers} layers of " if config.layers > 1 else ""


def _tqdm() -> Any:
    """tqdm's bar, which the train extra installs; a UsageError without it."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise UsageError(
            "the progress bar needs tqdm, which is not installed: pip install 'bptt[train]', or "
            "run with --quiet"
        ) from None
    return tqdm


class _Unshown:
    """The bar's count when no bar is shown (--quiet): the same calls, no output, no tqdm."""

    def __init__(self, total: int, initial: int):
        self.total = total
        self.n: float = initial

    def update(self, steps: float) -> None:
        self.n += steps

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        pass

    def close(self) -> None:
        pass
