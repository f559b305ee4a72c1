"""The state of a `bptt train` run and its step of truncated BPTT.

One step: the next chunk of every stream (`corpus.Streams`), the mean cross-entropy per character
and its exact gradients from the core (h0 = the previous step's h_last), clipping by the global
norm, one optimizer update. The state: the parameters, the optimizer's, the streams' position and
hidden states, the step count and the samples' RNG; a checkpoint holds it all.
"""

import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from bptt import _core, checkpoint, lr_schedule, memory, run_directory, sampling, stack, validation
from bptt.corpus import (
    STDLIB,
    Corpus,
    Streams,
    Vocabulary,
    read_text,
    recorded_source,
    shortest_text_length,
    text_fingerprint,
)
from bptt.errors import SettingError
from bptt.optimizers import clip_grad_norm, make_optimizer
from bptt.parameter_vector import ParameterVector
from bptt.training_config import CHANGEABLE_ON_RESUME, Budget, TrainConfig
from bptt.training_memory import memory_needed


class TrainingDiverged(SettingError):
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
            lambda name: (
                f"training diverged at step {step}: {what} not finite; try a smaller "
                f"{name('lr')} ({on_disk})"
            )
        )


class Trainer:
    """The state of a run and its training step. By default a step is one call of the core
    (`_core.TrainingStep`: the gradients, the clip and the update); given a `loss_and_grad`
    function (the benchmark's NumPy oracle, the tests' judge of the core's step), the step is
    taken in parts around it, the same maths: loss_and_grad, clip_grad_norm, the optimizer
    (loss_and_grad given memory_budget= when the config has one)."""

    def __init__(
        self,
        config: TrainConfig,
        corpus: Corpus,
        params: dict[str, np.ndarray],
        loss_and_grad: Callable | None = None,
    ):
        self.config = config
        self.corpus = corpus
        self.streams = Streams(corpus.train_ids, config.batch, config.seq_len)
        size = len(corpus.vocabulary)
        shapes = stack.parameter_shapes(size, config.hidden, size, config.layers)
        # the parameters live in one vector (params.vector), updated in a few calls
        self.params = ParameterVector({name: params[name] for name in shapes})
        self.optimizer = make_optimizer(config.optimizer, self.params, config.lr)
        # the gradients land in one vector laid out like the parameters: clipped and stepped whole
        self._gradients = self.params.views(np.zeros_like(self.params.vector))
        # the state each step starts from; the core's whole step writes the next one into the
        # other of two buffers
        self._states = tuple(np.zeros(config.state_shape, config.dtype) for _ in "ab")
        self.hidden = self._states[0]
        self.position = 0  # where every stream's next chunk starts
        self.step_count = 0
        self.rng = np.random.default_rng(config.seed)
        self.elapsed_seconds = 0.0  # wall time of the run's earlier invocations
        self.budget = Budget()  # the last invocation's, which a resume without one reuses
        # the learning-rate schedule's: the run's end, in run totals (steps, or minutes of all
        # its invocations), and the fraction of it done, which `run` sets before each step
        self.horizon = Budget()
        self.progress = 0.0
        self.last_checkpoint: tuple[Path, int] | None = None  # (path, step) on disk
        self.loss_and_grad = loss_and_grad
        self._fused_step = None if loss_and_grad is not None else self._new_fused_step()

    def _new_fused_step(self) -> "_core.TrainingStep":
        """The core's whole step, at the optimizer's current learning rate."""
        size = len(self.corpus.vocabulary)
        return _core.TrainingStep(
            self.params.vector,
            self._gradients.vector,
            input_size=size,
            hidden_size=self.config.hidden,
            output_size=size,
            activation=self.config.activation,
            max_norm=self.config.clip,
            memory_budget=self.config.memory_budget_bytes,
            compute_dtype=self.config.compute_dtype,
            layers=self.config.layers,
            **self.optimizer.fused_settings(),
        )

    @classmethod
    def start(cls, config: TrainConfig, **options) -> "Trainer":
        """A new run: the text read and checked, the weights drawn from config.seed."""
        config.check()
        corpus = corpus_for(config)
        size = len(corpus.vocabulary)
        params = stack.init_params(
            size,
            config.hidden,
            size,
            config.layers,
            dtype=np.dtype(config.dtype),
            seed=config.seed,
            init=config.init,
        )
        # the rate itself, not None: a later default leaves the run's alone
        config = replace(config, text=recorded_source(config.text), lr=config.learning_rate)
        return cls(config, corpus, params, **options)

    @classmethod
    def resume(
        cls, run_dir: Path, text: str | None = None, settings: dict | None = None, **options
    ) -> "Trainer":
        """The run saved in run_dir, on its own text (or `text`, which must be the same); the
        `settings` given again (as TrainConfig fields) must be the run's own, but those that
        change no result (CHANGEABLE_ON_RESUME), which replace the run's."""
        saved = checkpoint.read_run(run_dir)
        config = saved.config
        for field, value in (settings or {}).items():
            if field in CHANGEABLE_ON_RESUME:
                config = replace(config, **{field: value}).check()
            elif _kept_as(config, field, value) != _kept_as(config, field, getattr(config, field)):
                raise _setting_kept(field, value, getattr(config, field), run_dir)
        if text is not None:
            config = replace(config, text=text)
        elif config.text != STDLIB and not os.path.exists(config.text):
            raise SettingError(
                lambda name: (
                    f"{name('text')} {config.text}: no such file (the run's text: if it moved, "
                    f"give its new place with {name('text')} FILE)"
                )
            )
        contents = read_text(config.text)
        check_same_text(saved, contents, config, given=text is not None)
        corpus = corpus_for(config, contents)
        config = replace(config, text=recorded_source(config.text))
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
        trainer.horizon = saved.horizon
        trainer.last_checkpoint = (saved.path, saved.step)
        return trainer

    def step(self) -> float:
        """One step of truncated BPTT; returns the chunk's mean cross-entropy in nats."""
        inputs, targets = self.streams.chunk(self.position)
        self._schedule_learning_rate()
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

    def _schedule_learning_rate(self) -> None:
        """The optimizer's rate for the next step, from the schedule at `progress`."""
        config = self.config
        lr = lr_schedule.learning_rate(
            config.lr_schedule, config.learning_rate, self.step_count, self.progress
        )
        if lr != self.optimizer.lr:
            self.optimizer.lr = lr
            if self._fused_step is not None:  # its rate is fixed; a new one costs ~10 us
                self._fused_step = self._new_fused_step()

    def _step_in_parts(self, inputs, targets) -> tuple[float, np.ndarray]:
        """loss_and_grad, clip_grad_norm and the optimizer's step; returns (loss, h_last)."""
        budget, compute_dtype = self.config.memory_budget_bytes, self.config.compute_dtype
        assert self.loss_and_grad is not None  # the steps are taken in parts only around one
        result = self.loss_and_grad(
            self.params,
            inputs,
            targets,
            h0=self.hidden,
            activation=self.config.activation,
            reduction="mean",
            out=self._gradients,
            **({} if budget is None else {"memory_budget": budget}),
            **({} if compute_dtype is None else {"compute_dtype": compute_dtype}),
        )
        gradient = self._gradients.vector
        norm = clip_grad_norm(gradient, self.config.clip)
        if not (math.isfinite(result.loss) and math.isfinite(norm)):
            raise TrainingDiverged(
                self.step_count + 1, "the loss or the gradient is", self.last_checkpoint
            )
        self.optimizer.step(gradient)
        return result.loss, result.h_last

    def validation_bpc(self) -> float:
        """Bits per character on the first `validation_chars` held-out characters."""
        ids = self.corpus.validation_ids[: self.config.validation_chars + 1]
        return validation.bits_per_character(self.forward, ids, self.config.batch)

    def forward(self, inputs: np.ndarray, state: np.ndarray | None):
        """The model's logits of token ids and its state after them (`stack.forward`)."""
        return stack.forward(self.params, inputs, h0=state, activation=self.config.activation)

    def sample(self, length: int) -> str:
        return sampling.generate(
            self.params,
            self.corpus.vocabulary,
            length,
            self.rng,
            activation=self.config.activation,
        )

    def save(self, run_dir: Path, elapsed_seconds: float) -> Path:
        """The checkpoint of this state in run_dir; TrainingDiverged, and no checkpoint written,
        if any of its arrays is not finite."""
        arrays = checkpoint.run_arrays(self)
        for name, value in arrays.items():  # a diverged state never replaces a checkpoint
            if not np.isfinite(value).all():
                raise TrainingDiverged(self.step_count, f"{name} is", self.last_checkpoint)
        path = checkpoint.save(run_dir, arrays, checkpoint.run_metadata(self, elapsed_seconds))
        self.last_checkpoint = (path, self.step_count)
        return path


def _kept_as(config: TrainConfig, field: str, value):
    """A setting's value as the run keeps it: the params' own dtype named as compute_dtype is
    none (the same products, bit for bit)."""
    if field == "compute_dtype" and value == config.dtype:
        return None
    return value


def _setting_kept(field: str, given, kept, run_dir: Path) -> SettingError:
    kept = "none" if kept is None else kept
    return SettingError(
        lambda name: (
            f"{name(field)} {given}: the run in {run_dir} has {kept}, and a resumed run "
            f"keeps its settings (leave {name(field)} out, or start a new run with "
            f"{name(run_directory.NEW_RUN)})"
        )
    )


def corpus_for(config: TrainConfig, text: str | None = None) -> Corpus:
    """The config's text (read now unless given) as a corpus, checked to be long enough for one
    step and validation; and the run checked to fit in the memory available, before it
    allocates any of it."""
    if text is None:
        text = read_text(config.text)
    length, needed = len(text), shortest_text_length(config.batch, config.seq_len)
    if length < needed:
        raise SettingError(
            lambda name: (
                f"{text_source(config, name)}: {length} characters are too few for one "
                f"step of {name('batch')} {config.batch} streams of {name('seq_len')} "
                f"{config.seq_len}; it needs at least {needed} (5% of them held out for "
                "validation)"
            )
        )
    corpus = Corpus.of_text(text)
    shortfall = memory.shortfall(memory_needed(config, corpus))
    if shortfall:
        vocabulary_size = len(corpus.vocabulary)
        raise SettingError(
            lambda name: (
                "a run of "
                + (f"{name('layers')} {config.layers}, " if config.layers > 1 else "")
                + f"{name('hidden')} {config.hidden}, {name('seq_len')} "
                f"{config.seq_len}, {name('batch')} {config.batch} and a vocabulary of "
                f"{vocabulary_size} {shortfall}"
            )
        )
    return corpus


def text_source(config: TrainConfig, name: Callable[[str], str]) -> str:
    """The config's text as an error names it, with `name(setting)` for its setting."""
    return "the default corpus" if config.text == STDLIB else f"{name('text')} {config.text}"


def check_same_text(
    saved: checkpoint.SavedRun, text: str, config: TrainConfig, *, given: bool
) -> None:
    """SettingError unless `text` is the text the saved run was trained on (its SHA-256 the
    one the checkpoint records); `given`: whether it was given anew, or read from where the
    run's own text was."""
    if text_fingerprint(text) == saved.text_fingerprint:
        return
    if not given:
        raise SettingError(
            lambda name: (
                f"{text_source(config, name)}: changed since the run in {saved.path.parent} "
                "started (its SHA-256 is not the one the checkpoint records); restore it, or "
                f"give a copy of the original with {name('text')} FILE"
            )
        )
    vocabulary = Vocabulary.of_text(text)
    if saved.vocabulary != vocabulary:
        saved_size, size = len(saved.vocabulary), len(vocabulary)
        raise SettingError(
            lambda name: (
                f"{saved.path}: the checkpoint's vocabulary ({saved_size} characters) "
                f"is not that of {text_source(config, name)} ({size} characters)"
            )
        )
    raise SettingError(
        lambda name: (
            f"{saved.path}: the checkpoint was trained on another text than "
            f"{text_source(config, name)} (same vocabulary, different contents)"
        )
    )
