"""The settings of a `bptt train` run: what decides its parameters and the memory its steps
take (`TrainConfig`, which a checkpoint keeps and a resume reuses) and when an invocation stops
(`Budget`), each with its check. Their errors (`SettingError`) name the settings by their
fields; the command line names them by its options."""

from dataclasses import dataclass

from bptt import _arguments, _model, sampling, stack
from bptt.corpus import STDLIB
from bptt.errors import SettingError, check_integer, check_number
from bptt.lr_schedule import LR_SCHEDULES
from bptt.memory_budget import parse_memory_budget
from bptt.optimizers import DEFAULT_LEARNING_RATES, OPTIMIZERS

# the model's activations but identity: `bptt train` offers nonlinear recurrences only
ACTIVATIONS = tuple(name for name in _model.ACTIVATIONS if name != "identity")
DTYPES = ("float32", "float64")
COMPUTE_DTYPES = ("bfloat16", *DTYPES)
DEFAULT_MINUTES = 5.0
MAX_MINUTES = 365 * 24 * 60.0  # a year; longer is a typo (1e308 overflows a count of seconds)
# steps of a run in all: the core counts them in 64-bit integers, and no run reaches this many
MAX_STEPS = 2**62
# the settings that change no result, which a resumed run may therefore be given anew
CHANGEABLE_ON_RESUME = ("memory_budget",)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a run's parameters, and the memory its steps may take; a
    checkpoint keeps it, a resume reuses it."""

    text: str = STDLIB  # a UTF-8 file, or STDLIB: the standard library's sources
    # the defaults of hidden, layers, seq_len, batch, lr, lr_schedule and init: the README's
    # sweep of the validation loss after runs of minutes
    hidden: int = 256
    layers: int = 1  # Elman layers, each feeding the next; the head reads the last
    init: str = "uniform"  # of the recurrent weights W: bptt.stack.INITS
    seq_len: int = 50
    batch: int = 32
    optimizer: str = "adam"
    lr: float | None = None  # None: DEFAULT_LEARNING_RATES[optimizer]
    lr_schedule: str = "cosine"  # warm-up, then decay to 0 (bptt.lr_schedule); or "constant"
    clip: float = 5.0  # the largest global gradient norm
    activation: str = "tanh"
    dtype: str = "float32"
    # the products' operands: None (or dtype) for dtype's own, "bfloat16" (float32 dtype) for
    # bfloat16 operands accumulated in float32 (bptt.loss_and_grad's compute_dtype)
    compute_dtype: str | None = None
    seed: int = 0  # draws the initial weights and the printed samples
    # a validation takes as long as tens of steps, and counts in a run's minutes
    eval_every: int = 500  # steps between validations (with a printed sample)
    checkpoint_every: int = 500  # steps between checkpoints
    log_every: int = 10  # steps between rows of metrics.csv
    validation_chars: int = 100_000  # the first this many held-out characters are scored
    sample_chars: int = 200
    # the working memory of a step's gradients at most: bytes or a size such as "64MiB" (kept as
    # given); None: every state kept. The same parameters under any budget.
    memory_budget: int | str | None = None

    def check(self) -> "TrainConfig":
        """SettingError naming the first invalid field."""
        if not isinstance(self.text, str) or not self.text:
            raise SettingError.invalid("text", f"expected a file name, got {self.text!r}")
        positive_ints = (
            "hidden",
            "layers",
            "seq_len",
            "batch",
            "eval_every",
            "checkpoint_every",
            "log_every",
            "validation_chars",
        )
        for name in positive_ints:
            check_integer(name, getattr(self, name), 1)
        check_integer("sample_chars", self.sample_chars, 0, sampling.MAX_LENGTH)
        if self.lr is not None:
            check_number("lr", self.lr)
        check_number("clip", self.clip)
        for name, allowed in (
            ("optimizer", tuple(OPTIMIZERS)),
            ("lr_schedule", LR_SCHEDULES),
            ("init", stack.INITS),
            ("activation", ACTIVATIONS),
            ("dtype", DTYPES),
        ):
            if getattr(self, name) not in allowed:
                raise SettingError.invalid(
                    name, f"expected one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )
        try:
            _arguments.compute_dtype(self.compute_dtype, self.dtype)
        except ValueError as error:
            problem = str(error).removeprefix("compute_dtype: ")
            raise SettingError.invalid("compute_dtype", problem) from None
        check_integer("seed", self.seed, 0)
        try:
            parse_memory_budget(self.memory_budget)
        except (TypeError, ValueError) as error:
            problem = str(error).removeprefix("memory_budget: ")
            raise SettingError.invalid("memory_budget", problem) from None
        if self.layers > 1 and self.memory_budget is not None:
            raise SettingError.invalid(
                "memory_budget", "a budget bounds a one-layer run's steps only (layers 1)"
            )
        return self

    @property
    def state_shape(self) -> tuple[int, ...]:
        """The shape of the state a step starts from: (B, H), or (L, B, H) for a stack."""
        one_layer = (self.batch, self.hidden)
        return one_layer if self.layers == 1 else (self.layers, *one_layer)

    @property
    def memory_budget_bytes(self) -> int | None:
        return parse_memory_budget(self.memory_budget)

    @property
    def learning_rate(self) -> float:
        return DEFAULT_LEARNING_RATES[self.optimizer] if self.lr is None else self.lr


@dataclass(frozen=True)
class Budget:
    """When this invocation stops: when the run has taken `steps` steps in all (counting those
    before a resume), or after `minutes` of this invocation, whichever comes first."""

    steps: int | None = None
    minutes: float | None = None

    def check(self, max_minutes: float | None = MAX_MINUTES) -> "Budget":
        """SettingError naming the first invalid field. A schedule's horizon, in run totals
        (the minutes before a resume and those after it), takes max_minutes=None."""
        if self.steps is not None:
            check_integer("steps", self.steps, 1, MAX_STEPS)
        if self.minutes is not None:
            check_number("minutes", self.minutes, maximum=max_minutes)
        return self

    def or_default(self) -> "Budget":
        if self.steps is None and self.minutes is None:
            return Budget(minutes=DEFAULT_MINUTES)
        return self
