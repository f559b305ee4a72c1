"""`bptt train`: a character-level language model trained on the core by truncated BPTT.

One step: the next chunk of every stream (`corpus.Streams`), the mean cross-entropy per character
and its exact gradients from the core (h0 = the previous step's h_last), clipping by the global
norm, one optimizer update. Around the steps: a progress bar, validation and samples every so
often, metrics.csv, atomic checkpoints, and a plot at the end.
"""

import math
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import numpy as np

from bptt import _api, _core, _params, checkpoint, memory, metrics, sampling
from bptt.corpus import STDLIB, Corpus, Streams, Vocabulary, read_text, shortest_text_length
from bptt.errors import UsageError, check_integer, check_number, writing
from bptt.optimizers import DEFAULT_LEARNING_RATES, OPTIMIZERS, clip_grad_norm, make_optimizer
from bptt.parameter_vector import ParameterVector

PARAM_NAMES = _api.PARAM_NAMES
ACTIVATIONS = ("tanh", "sigmoid", "relu")
DTYPES = ("float32", "float64")
DEFAULT_MINUTES = 5.0
MAX_MINUTES = 365 * 24 * 60.0  # a year; longer is a typo (1e308 overflows a count of seconds)
VALIDATION_CHUNK = 500  # time steps a forward call takes when scoring the validation text


class TrainingDiverged(UsageError):
    """The loss, the gradient norm or the parameters stopped being finite: usually a learning
    rate too large."""

    def __init__(self, step: int, what: str, last_checkpoint: tuple[Path, int] | None):
        # The run's own periodic checkpoints may have replaced the one it resumed from: they
        # are finite states of the same run, so they stay, and the message says which is on disk.
        on_disk = (
            "no checkpoint was written"
            if last_checkpoint is None
            else f"last good checkpoint: step {last_checkpoint[1]}, {last_checkpoint[0]}"
        )
        super().__init__(
            f"training diverged at step {step}: {what} not finite; try a smaller --lr ({on_disk})"
        )


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's parameters; a checkpoint keeps it, a resume reuses it."""

    text: str = STDLIB  # a UTF-8 file, or STDLIB: the standard library's sources
    hidden: int = 256
    seq_len: int = 100
    batch: int = 32
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LEARNING_RATES[optimizer]
    clip: float = 5.0  # the largest global gradient norm
    activation: str = "tanh"
    dtype: str = "float32"
    seed: int = 0  # draws the initial weights and the printed samples
    eval_every: int = 200  # steps between validations (with a printed sample)
    checkpoint_every: int = 200  # steps between checkpoints
    log_every: int = 10  # steps between rows of metrics.csv
    validation_chars: int = 100_000  # the first this many held-out characters are scored
    sample_chars: int = 200

    def check(self) -> "TrainConfig":
        """UsageError naming the first invalid setting, as its command-line option."""
        if not isinstance(self.text, str) or not self.text:
            raise UsageError(f"--text: expected a file name, got {self.text!r}")
        positive_ints = (
            "hidden",
            "seq_len",
            "batch",
            "eval_every",
            "checkpoint_every",
            "log_every",
            "validation_chars",
        )
        for name in positive_ints:
            check_integer(option(name), getattr(self, name), 1)
        check_integer("--sample-chars", self.sample_chars, 0, sampling.MAX_LENGTH)
        if self.lr is not None:
            check_number("--lr", self.lr)
        check_number("--clip", self.clip)
        for name, allowed in (
            ("optimizer", tuple(OPTIMIZERS)),
            ("activation", ACTIVATIONS),
            ("dtype", DTYPES),
        ):
            if getattr(self, name) not in allowed:
                raise UsageError(
                    f"{option(name)}: expected one of {', '.join(allowed)}, "
                    f"got {getattr(self, name)!r}"
                )
        check_integer("--seed", self.seed, 0)
        return self

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LEARNING_RATES[self.optimizer] if self.lr is None else self.lr


def option(name: str) -> str:
    """The command-line option of a TrainConfig field."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True)
class Budget:
    """When this invocation stops: when the run has taken `steps` steps in all (counting those
    before a resume), or after `minutes` of this invocation, whichever comes first."""

    steps: int | None = None
    minutes: float | None = None

    def check(self) -> "Budget":
        if self.steps is not None:
            check_integer("--steps", self.steps, 1)
        if self.minutes is not None:
            check_number("--minutes", self.minutes, maximum=MAX_MINUTES)
        return self

    def or_default(self) -> "Budget":
        if self.steps is None and self.minutes is None:
            return Budget(minutes=DEFAULT_MINUTES)
        return self


class Trainer:
    """The state of a run (parameters, optimizer, stream position and hidden states, step count,
    sample RNG) and its training step. `loss_and_grad` is the core's; the benchmark swaps in the
    NumPy oracle to time the same loop around it."""

    def __init__(
        self,
        config: TrainConfig,
        corpus: Corpus,
        params: dict[str, np.ndarray],
        loss_and_grad: Callable = _api.loss_and_grad,
    ):
        self.config = config
        self.corpus = corpus
        self.streams = Streams(corpus.train_ids, config.batch, config.seq_len)
        # the parameters live in one vector (self.params are views), updated in a few calls
        self.parameters = ParameterVector({name: params[name] for name in PARAM_NAMES})
        self.params = self.parameters.arrays
        self.optimizer = make_optimizer(config.optimizer, self.parameters, config.lr)
        # the gradients land in one vector laid out like the parameters: clipped and stepped whole
        self._grad = np.zeros_like(self.parameters.vector)
        self._grads = self.parameters.views(self._grad)
        # the state each step starts from; the core's whole step writes the next one into the
        # other of two buffers
        self._states = tuple(np.zeros((config.batch, config.hidden), config.dtype) for _ in "ab")
        self.hidden = self._states[0]
        self.position = 0  # where every stream's next chunk starts
        self.step_count = 0
        self.rng = np.random.default_rng(config.seed)
        self.elapsed_seconds = 0.0  # wall time of the run's earlier invocations
        self.budget = Budget()  # the last invocation's, which a resume without one reuses
        self.last_checkpoint: tuple[Path, int] | None = None  # (path, step) on disk
        self.loss_and_grad = loss_and_grad
        # With the core's gradients, the whole step (gradients, clipping, update) is one call of
        # the core; a step with another loss_and_grad (the benchmark's NumPy oracle) is taken in
        # parts, the same maths.
        self._fused_step = None
        if loss_and_grad is _api.loss_and_grad:
            size = len(corpus.vocabulary)
            self._fused_step = _core.TrainingStep(
                self.parameters.vector,
                self._grad,
                input_size=size,
                hidden_size=config.hidden,
                output_size=size,
                activation=config.activation,
                max_norm=config.clip,
                **self.optimizer.fused_settings(),
            )

    @classmethod
    def start(cls, config: TrainConfig, **options) -> "Trainer":
        """A new run: the text read and checked, the weights drawn from config.seed."""
        config.check()
        corpus = corpus_for(config)
        size = len(corpus.vocabulary)
        params = _params.init_params(
            size, config.hidden, size, dtype=np.dtype(config.dtype), seed=config.seed
        )
        return cls(config, corpus, params, **options)

    def step(self) -> float:
        """One step of truncated BPTT; returns the chunk's mean cross-entropy in nats."""
        inputs, targets = self.streams.chunk(self.position)
        if self._fused_step is None:
            loss, h_last = self._step_in_parts(inputs, targets)
        else:
            h_last = self._states[1] if self.hidden is self._states[0] else self._states[0]
            loss, _, updated = self._fused_step(
                inputs, targets, self.hidden, h_last, self.optimizer.step_count + 1
            )
            if not updated:
                raise TrainingDiverged(
                    self.step_count + 1, "the loss or the gradient is", self.last_checkpoint
                )
            self.optimizer.step_count += 1
        self.position = self.streams.next_position(self.position)
        # at a new epoch every stream starts again from its beginning: no state to carry
        self.hidden = h_last if self.position else np.zeros_like(self.hidden)
        self.step_count += 1
        return loss

    def _step_in_parts(self, inputs, targets) -> tuple[float, np.ndarray]:
        """loss_and_grad, clip_grad_norm and the optimizer's step; returns (loss, h_last)."""
        result = self.loss_and_grad(
            self.params,
            inputs,
            targets,
            h0=self.hidden,
            activation=self.config.activation,
            reduction="mean",
            out=self._grads,
        )
        grad = self._grad
        norm = clip_grad_norm(grad, self.config.clip)
        if not (math.isfinite(result.loss) and math.isfinite(norm)):
            raise TrainingDiverged(
                self.step_count + 1, "the loss or the gradient is", self.last_checkpoint
            )
        self.optimizer.step(grad)
        return result.loss, result.h_last

    def validation_bpc(self) -> float:
        """Bits per character on the first `validation_chars` held-out characters, read as
        parallel streams with the state carried across chunks."""
        ids = self.corpus.validation_ids[: self.config.validation_chars + 1]
        batch = min(self.config.batch, len(ids) - 1)
        streams = Streams(ids, batch, min(VALIDATION_CHUNK, (len(ids) - 1) // batch))
        state, position, nats = None, 0, 0.0
        while True:
            inputs, targets = streams.chunk(position)
            out = _api.forward(self.params, inputs, h0=state, activation=self.config.activation)
            logits = out.logits
            # -log softmax(o)_y = logsumexp(o) - o_y, with the max subtracted for stability
            top = logits.max(axis=-1, keepdims=True)
            log_sum = np.log(np.exp(logits - top).sum(axis=-1, keepdims=True)) + top
            picked = np.take_along_axis(logits, targets[..., None], axis=-1)
            nats += float(np.sum(log_sum - picked, dtype=np.float64))
            state, position = out.h_last, streams.next_position(position)
            if position == 0:
                break
        return nats / (streams.length * streams.batch) / math.log(2)

    def sample(self, length: int) -> str:
        return sampling.generate(
            self.params,
            self.corpus.vocabulary,
            length,
            self.rng,
            activation=self.config.activation,
        )

    # -- checkpoints -------------------------------------------------------------------------

    def save(self, run_dir: Path, elapsed_seconds: float) -> Path:
        arrays = {f"params.{name}": value for name, value in self.params.items()}
        arrays.update(self.optimizer.state_arrays())
        arrays["hidden"] = self.hidden
        for name, value in arrays.items():  # a diverged state never replaces a checkpoint
            if not np.isfinite(value).all():
                raise TrainingDiverged(self.step_count, f"{name} is", self.last_checkpoint)
        metadata = {
            "config": asdict(self.config),
            "vocabulary": self.corpus.vocabulary.characters,
            "text_fingerprint": self.corpus.fingerprint,
            "step": self.step_count,
            "position": self.position,
            "optimizer_steps": self.optimizer.step_count,
            "rng_state": self.rng.bit_generator.state,
            "elapsed_seconds": elapsed_seconds,
            "budget": asdict(self.budget),
        }
        path = checkpoint.save(run_dir, arrays, metadata)
        self.last_checkpoint = (path, self.step_count)
        return path

    @classmethod
    def resume(
        cls, run_dir: Path, text: str | None = None, settings: dict | None = None, **options
    ) -> "Trainer":
        """The run saved in run_dir, on its own text (or `text`, which must be the same); the
        `settings` given again (as TrainConfig fields) must be the run's own."""
        saved = read_checkpoint(run_dir)
        config = saved.config
        for name, value in (settings or {}).items():
            if getattr(config, name) != value:
                raise UsageError(
                    f"{option(name)} {value}: the run in {run_dir} has {getattr(config, name)}, "
                    "and a resumed run keeps its settings (leave the option out, or start a new "
                    "run with --out)"
                )
        if text is not None:
            config = TrainConfig(**{**asdict(config), "text": text})
        corpus = corpus_for(config)
        check_same_text(saved, corpus, config)
        trainer = cls(config, corpus, saved.params, **options)
        if not (0 <= saved.position < trainer.streams.length):
            raise checkpoint.corrupt(saved.path, f"stream position {saved.position}")
        trainer.optimizer.load_state_arrays(saved.optimizer_state, saved.step)
        trainer.hidden[...] = saved.hidden
        trainer.step_count = saved.step
        trainer.position = saved.position
        trainer.rng = saved.rng
        trainer.elapsed_seconds = saved.elapsed_seconds
        trainer.budget = saved.budget
        trainer.last_checkpoint = (saved.path, saved.step)
        return trainer


class SavedRun(NamedTuple):
    """A checkpoint's contents, every field checked for its type, range and finiteness."""

    path: Path
    config: TrainConfig
    vocabulary: Vocabulary
    text_fingerprint: str
    params: dict[str, np.ndarray]
    optimizer_state: dict[str, np.ndarray]
    hidden: np.ndarray
    step: int
    position: int  # checked against the text's streams by Trainer.resume
    rng: np.random.Generator
    elapsed_seconds: float
    budget: Budget


def read_checkpoint(run_dir) -> SavedRun:
    """run_dir's checkpoint, or UsageError naming the first field that is missing or invalid."""
    arrays, metadata = checkpoint.load(run_dir)
    path = checkpoint.checkpoint_path(run_dir)
    config = config_of(metadata, path)
    characters = metadata.get("vocabulary")
    if not isinstance(characters, str) or not characters or len(set(characters)) != len(characters):
        raise checkpoint.corrupt(path, "no valid vocabulary")
    fingerprint = metadata.get("text_fingerprint")
    if not isinstance(fingerprint, str):
        raise checkpoint.corrupt(path, "no text fingerprint")
    size, dtype = len(characters), np.dtype(config.dtype)
    shapes = param_shapes(size, config.hidden, size)
    params = {
        name: checkpoint.require(arrays, f"params.{name}", shape, dtype, path)
        for name, shape in shapes.items()
    }
    optimizer = OPTIMIZERS[config.optimizer]
    optimizer_state = {}
    for state in optimizer.state_names:
        for name, shape in shapes.items():
            key = optimizer.state_array_name(state, name)
            optimizer_state[key] = checkpoint.require(
                arrays, key, shape, dtype, path, nonnegative=state in optimizer.nonnegative_states
            )
    hidden = checkpoint.require(arrays, "hidden", (config.batch, config.hidden), dtype, path)
    try:
        step = check_integer("step", metadata.get("step"), 0)
        optimizer_steps = check_integer("optimizer_steps", metadata.get("optimizer_steps"), 0)
        if optimizer_steps != step:  # every step is one optimizer update
            raise UsageError(f"optimizer_steps {optimizer_steps} is not the step count {step}")
        position = check_integer("position", metadata.get("position"), 0)
        if position % config.seq_len:
            raise UsageError(f"stream position {position}")
        elapsed_seconds = check_number(
            "elapsed_seconds", metadata.get("elapsed_seconds"), zero_allowed=True
        )
        budget = metadata.get("budget")
        if not isinstance(budget, dict) or set(budget) != {"steps", "minutes"}:
            raise UsageError(f"budget: expected steps and minutes, got {budget!r}")
        budget = Budget(**budget).check()
    except UsageError as error:
        raise checkpoint.corrupt(path, str(error)) from None
    rng = np.random.default_rng()
    try:
        rng.bit_generator.state = metadata.get("rng_state")
    except (TypeError, ValueError, OverflowError) as error:
        raise checkpoint.corrupt(path, f"rng_state: {error}") from None
    return SavedRun(
        path,
        config,
        Vocabulary(characters),
        fingerprint,
        params,
        optimizer_state,
        hidden,
        step,
        position,
        rng,
        float(elapsed_seconds),
        budget,
    )


def load_model(run_dir) -> tuple[dict[str, np.ndarray], Vocabulary, str]:
    """The parameters, vocabulary and activation saved in run_dir, for sampling."""
    saved = read_checkpoint(run_dir)
    return saved.params, saved.vocabulary, saved.config.activation


def param_shapes(input_size: int, hidden_size: int, output_size: int) -> dict[str, tuple]:
    return {
        "U": (hidden_size, input_size),
        "W": (hidden_size, hidden_size),
        "b": (hidden_size,),
        "V": (output_size, hidden_size),
        "c": (output_size,),
    }


def corpus_for(config: TrainConfig) -> Corpus:
    """The config's text as a corpus, checked to be long enough for one step and validation;
    and the run checked to fit in the memory available, before it allocates any of it."""
    text = read_text(config.text)
    needed = shortest_text_length(config.batch, config.seq_len)
    if len(text) < needed:
        raise UsageError(
            f"{text_source(config)}: {len(text)} characters are too few for one step of --batch "
            f"{config.batch} streams of --seq-len {config.seq_len}; it needs at least {needed} "
            "(5% of them held out for validation)"
        )
    corpus = Corpus.of_text(text)
    memory.check_available(
        memory_needed(config, corpus),
        f"a run of --hidden {config.hidden}, --seq-len {config.seq_len}, --batch "
        f"{config.batch} and a vocabulary of {len(corpus.vocabulary)}",
    )
    return corpus


def memory_needed(config: TrainConfig, corpus: Corpus) -> int:
    """Bytes a run holds at its peak, about: the parameters and as many vectors again for the
    gradient (which the core writes) and the optimizer's state;
    the core's buffers for one step (the states and a (T·B, max(H, O)) work buffer) or for one
    validation chunk (states, logits and two temporaries of their size); the streams' table of
    ids; a sample."""
    hidden, size, itemsize = config.hidden, len(corpus.vocabulary), np.dtype(config.dtype).itemsize
    parameters = sum(math.prod(shape) for shape in param_shapes(size, hidden, size).values())
    vectors = 2 + len(OPTIMIZERS[config.optimizer].state_names)
    rows = config.seq_len * config.batch
    step = (rows + config.batch) * hidden + rows * max(hidden, size)
    validation_rows = min(VALIDATION_CHUNK * config.batch, config.validation_chars)
    validation = validation_rows * (hidden + 3 * size)
    streams = corpus.train_ids.itemsize * len(corpus.train_ids)
    sample = sampling.memory_needed(hidden, size, itemsize, config.sample_chars, 1)
    return itemsize * (vectors * parameters + max(step, validation)) + streams + sample


def text_source(config: TrainConfig) -> str:
    return "the default corpus" if config.text == STDLIB else f"--text {config.text}"


def config_of(metadata: dict, path: Path) -> TrainConfig:
    stored = metadata.get("config")
    names = {field.name for field in fields(TrainConfig)}
    if not isinstance(stored, dict) or set(stored) != names:
        raise UsageError(f"{path}: corrupt checkpoint (its settings are missing or unknown)")
    try:
        return TrainConfig(**stored).check()
    except UsageError as error:
        raise UsageError(f"{path}: corrupt checkpoint ({error})") from None


def check_same_text(saved: SavedRun, corpus: Corpus, config: TrainConfig) -> None:
    if saved.vocabulary != corpus.vocabulary:
        raise UsageError(
            f"{saved.path}: the checkpoint's vocabulary ({len(saved.vocabulary)} characters) is "
            f"not that of {text_source(config)} ({len(corpus.vocabulary)} characters)"
        )
    if saved.text_fingerprint != corpus.fingerprint:
        raise UsageError(
            f"{saved.path}: the checkpoint was trained on another text than "
            f"{text_source(config)} (same vocabulary, different contents)"
        )


# -- the run: steps, progress, metrics, checkpoints ------------------------------------------


class _StopOnInterrupt:
    """Ctrl-C asks the loop to stop after the current step, so that the state saved is always
    the state after a whole step; a second Ctrl-C interrupts at once."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: Ctrl-C is not ours to handle
            self._previous = None
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _progress_bar(budget: Budget, trainer: Trainer, show: bool):
    from tqdm.auto import tqdm

    # steps decide the end: a bar of steps; minutes decide it: a bar of seconds
    if budget.steps is not None:
        total, initial, unit = budget.steps, min(trainer.step_count, budget.steps), "step"
    else:
        total, initial, unit = round(budget.minutes * 60), 0, "s"
    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        disable=not show,
        dynamic_ncols=True,
        bar_format="{percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
    )


@contextmanager
def _stop_if_diverged(trainer: Trainer) -> Iterator[None]:
    """A finite gradient can still overflow the update (a huge --lr); the core then refuses the
    parameters with a ValueError at their next use, which is the run diverging (a check after
    every step would cost microseconds; this costs nothing until then)."""
    try:
        yield
    except ValueError:
        if np.isfinite(trainer.parameters.vector).all():
            raise
        raise TrainingDiverged(
            trainer.step_count, "the parameters are", trainer.last_checkpoint
        ) from None


class Outcome(NamedTuple):
    trainer: Trainer
    finished: bool  # False: stopped by Ctrl-C


def run(
    trainer: Trainer,
    run_dir: Path,
    budget: Budget,
    *,
    resumed: bool = False,
    show_progress: bool = True,
) -> Outcome:
    """Train until the budget is spent or Ctrl-C. Checkpoints every `checkpoint_every` steps and
    at the end, validates every `eval_every` steps and at the end (not after Ctrl-C); a Ctrl-C
    after the steps waits for that end, which writes the checkpoint."""
    config = trainer.config
    trainer.budget = budget = budget.or_default()
    write = _writer(show_progress)
    start = time.perf_counter()

    def elapsed() -> float:
        return trainer.elapsed_seconds + time.perf_counter() - start

    def out_of_budget() -> bool:
        if budget.steps is not None and trainer.step_count >= budget.steps:
            return True
        return budget.minutes is not None and time.perf_counter() - start >= budget.minutes * 60

    # Opened (and, on a resume, its rows checked) before anything is printed.
    log = metrics.MetricsLog(run_dir, resume_step=trainer.step_count if resumed else None)
    if show_progress:
        write(_describe(trainer, run_dir, resumed))
    interval_nats, interval_steps, interval_chars, interval_seconds = 0.0, 0, 0, 0.0
    last_validation = None
    # overflow is checked for where it matters (a diverged step is an error): no NumPy warnings
    with (
        log,
        _StopOnInterrupt() as interrupt,
        np.errstate(over="ignore", invalid="ignore"),
        _stop_if_diverged(trainer),
    ):
        bar = _progress_bar(budget, trainer, show_progress)
        try:
            while not out_of_budget() and not interrupt.requested:
                chars = trainer.streams.chunk(trainer.position)[0].size
                step_start = time.perf_counter()
                interval_nats += trainer.step()
                interval_seconds += time.perf_counter() - step_start
                interval_steps += 1
                interval_chars += chars
                step = trainer.step_count
                validation = None
                if step % config.eval_every == 0:
                    validation = last_validation = trainer.validation_bpc()
                    _report_validation(write, trainer, validation)
                if step % config.log_every == 0 or validation is not None:
                    train_bpc = interval_nats / interval_steps / math.log(2)
                    chars_per_s = interval_chars / interval_seconds
                    log.write(step, elapsed(), train_bpc, validation, chars_per_s)
                    bar.set_postfix_str(
                        f"step {step}, train {train_bpc:.3f} bpc, {chars_per_s:,.0f} chars/s",
                        refresh=False,
                    )
                    interval_nats, interval_steps, interval_chars, interval_seconds = 0, 0, 0, 0
                if step % config.checkpoint_every == 0:
                    trainer.save(run_dir, elapsed())
                bar.update(
                    1
                    if budget.steps is not None
                    else min(time.perf_counter() - start, bar.total) - bar.n
                )
        finally:
            bar.close()
        finished = not interrupt.requested
        if finished and (last_validation is None or trainer.step_count % config.eval_every):
            # the final sample must not advance the saved RNG: a resume samples what one run would
            rng_state = trainer.rng.bit_generator.state
            last_validation = trainer.validation_bpc()
            _report_validation(write, trainer, last_validation)
            trainer.rng.bit_generator.state = rng_state
            log.write(trainer.step_count, elapsed(), None, last_validation, None)
        plot = metrics.plot(run_dir)  # from every row: each is flushed as it is written
        # the checkpoint last: a run that fails before it leaves the previous one as it was
        path = trainer.save(run_dir, elapsed())
    if show_progress:
        what = "finished" if finished else "stopped by Ctrl-C"
        write(
            f"{what} at step {trainer.step_count}"
            + ("" if last_validation is None else f", validation {last_validation:.3f} bpc")
            + f"; checkpoint {path}, metrics {log.path}"
            + (f", plot {plot}" if plot else ", no plot (matplotlib is not installed)")
        )
        if not finished:
            write(f"continue with: bptt train --resume {run_dir}")
    return Outcome(trainer, finished)


def _describe(trainer: Trainer, run_dir: Path, resumed: bool) -> str:
    config, corpus = trainer.config, trainer.corpus
    source = "the standard library's sources" if config.text == STDLIB else config.text
    return (
        f"bptt train: {source}: {len(corpus.train_ids):,} characters to train on, "
        f"{len(corpus.validation_ids):,} held out, {len(corpus.vocabulary)} in the vocabulary\n"
        f"  {config.hidden} hidden units ({config.activation}), --batch {config.batch} x "
        f"--seq-len {config.seq_len}, {config.optimizer} lr {config.learning_rate:g}, clip "
        f"{config.clip:g}, {config.dtype}, {_api.get_num_threads()} thread(s)\n"
        + (f"  resuming {run_dir} at step {trainer.step_count}" if resumed else f"  into {run_dir}")
    )


def _writer(show: bool) -> Callable[[str], None]:
    if not show:
        return lambda text: None
    from tqdm.auto import tqdm

    return lambda text: tqdm.write(text, file=sys.stdout)


def _report_validation(write, trainer: Trainer, validation_bpc: float) -> None:
    if trainer.config.sample_chars == 0:
        write(f"step {trainer.step_count}: validation {validation_bpc:.3f} bpc")
        return
    sample = trainer.sample(trainer.config.sample_chars)
    write(
        f"---- step {trainer.step_count}: validation {validation_bpc:.3f} bpc; sample: ----\n"
        f"{sample}\n----"
    )


def train(
    config: TrainConfig, run_dir, budget: Budget = Budget(), *, show_progress: bool = True
) -> Outcome:
    """A new run in run_dir, which must hold no checkpoint yet."""
    run_dir = Path(run_dir)
    budget.check()
    with writing(f"--out {run_dir}"):  # e.g. a name too long to look up
        holds_checkpoint = checkpoint.checkpoint_path(run_dir).exists()
    if holds_checkpoint:
        raise UsageError(
            f"--out {run_dir}: holds a checkpoint already; continue it with --resume {run_dir} "
            "or choose another --out"
        )
    trainer = Trainer.start(config)
    prepare_run_dir(run_dir, "--out")
    return run(trainer, run_dir, budget, show_progress=show_progress)


def resume(
    run_dir,
    budget: Budget = Budget(),
    *,
    text: str | None = None,
    settings: dict | None = None,
    show_progress: bool = True,
) -> Outcome:
    """Continue the run in run_dir, by default with the budget it was last given (--steps: up to
    the same total; --minutes: as many minutes again)."""
    run_dir = Path(run_dir)
    budget.check()
    trainer = Trainer.resume(run_dir, text, settings)
    prepare_run_dir(run_dir, "--resume")
    if budget.steps is None and budget.minutes is None:
        budget = trainer.budget
    return run(trainer, run_dir, budget, resumed=True, show_progress=show_progress)


def prepare_run_dir(run_dir: Path, option: str) -> None:
    """Create run_dir and check that the run can write its outputs there, before any step: a
    bad --out is an error at once, not a traceback at the first checkpoint."""
    with writing(f"{option} {run_dir}"):
        if run_dir.exists() and not run_dir.is_dir():
            raise UsageError(f"{option} {run_dir}: is a file, expected a directory")
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    for name in (metrics.METRICS_NAME, metrics.PLOT_NAME):
        if (run_dir / name).is_dir():
            raise UsageError(f"{option} {run_dir}: its {name} is a directory, expected a file")
