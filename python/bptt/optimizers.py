"""Adam, Adagrad and SGD with momentum, with torch.optim's update formulas (operation for
operation, so that float64 runs agree to rounding), and clipping by the global gradient norm as
torch.nn.utils.clip_grad_norm_. They work on all the parameters at once, as one vector
(`ParameterVector`), in place: each step is one pass of the core over the vectors
(bptt/optimizer_steps.hpp), where NumPy would take one pass per operation.

Hyperparameters are torch's defaults, but for the learning rates (`DEFAULT_LEARNING_RATES`) and
SGD's momentum (0.9 instead of 0: the command offers "SGD with momentum")."""

import math
import numbers
from collections.abc import Mapping

import numpy as np

from bptt import _core
from bptt.errors import SettingError
from bptt.parameter_vector import ParameterVector

# Adam's: the best of the README's sweep, with the cosine schedule
DEFAULT_LEARNING_RATES = {"adam": 6e-3, "adagrad": 5e-2, "sgd": 0.1}


class Optimizer:
    """Updates params.vector in place from a gradient vector of the same layout."""

    name = ""
    state_names: tuple[str, ...] = ()  # one vector like the parameters' for each of these
    nonnegative_states: tuple[str, ...] = ()  # sums of squares: a negative value is corrupt

    def __init__(self, params: ParameterVector, lr: float):
        self.params = params
        self.lr = _nonnegative("lr", lr)
        self.step_count = 0
        self.state = {state: np.zeros_like(params.vector) for state in self.state_names}

    def step(self, grad: np.ndarray) -> None:
        self.step_count += 1
        self._update(self.params.vector, grad)

    def _update(self, param: np.ndarray, grad: np.ndarray) -> None:
        raise NotImplementedError

    def fused_settings(self) -> dict:
        """This optimizer as the core's whole training step takes it (`_core.TrainingStep`): its
        name, its state vectors in order, and its hyperparameters."""
        return {
            "optimizer": self.name,
            "states": tuple(self.state[state] for state in self.state_names),
            "lr": self.lr,
            **self._hyperparameters(),
        }

    def _hyperparameters(self) -> dict:
        return {}

    @classmethod
    def state_array_name(cls, state: str, param: str) -> str:
        """A checkpoint's name for one parameter's part of a state vector, e.g. 'adam.exp_avg.W'."""
        return f"{cls.name}.{state}.{param}"

    def state_arrays(self) -> dict[str, np.ndarray]:
        """The state as named arrays (views), for a checkpoint."""
        return {
            self.state_array_name(state, name): view
            for state, vector in self.state.items()
            for name, view in self.params.views(vector).items()
        }

    def load_state_arrays(self, arrays: Mapping[str, np.ndarray], step_count: int) -> None:
        for name, view in self.state_arrays().items():
            view[...] = arrays[name]
        self.step_count = step_count


class Adam(Optimizer):
    """torch.optim.Adam: m <- lerp(m, g, 1-β1); v <- β2·v + (1-β2)·g²;
    p <- p - (lr / (1-β1^t)) · m / (√v / √(1-β2^t) + ε)."""

    name = "adam"
    state_names = ("exp_avg", "exp_avg_sq")
    nonnegative_states = ("exp_avg_sq",)

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, lr)
        if len(betas) != 2 or not all(0.0 <= beta < 1.0 for beta in betas):
            raise ValueError(
                f"betas: expected two numbers in [0, 1), as torch.optim.Adam, got {betas!r}"
            )
        self.beta1, self.beta2 = betas
        self.eps = _nonnegative("eps", eps)

    def _hyperparameters(self):
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def _update(self, param, grad):
        # The core applies the step's bias corrections (bptt/optimizer_types.hpp).
        _core.adam_step(
            param,
            grad,
            self.state["exp_avg"],
            self.state["exp_avg_sq"],
            lr=self.lr,
            beta1=self.beta1,
            beta2=self.beta2,
            eps=self.eps,
            step=self.step_count,
        )


class Adagrad(Optimizer):
    """torch.optim.Adagrad (no lr decay, zero initial accumulator): s <- s + g²;
    p <- p - lr · g / (√s + ε)."""

    name = "adagrad"
    state_names = ("sum",)
    nonnegative_states = ("sum",)

    def __init__(self, params, lr, eps=1e-10):
        super().__init__(params, lr)
        self.eps = _nonnegative("eps", eps)

    def _hyperparameters(self):
        return {"eps": self.eps}

    def _update(self, param, grad):
        _core.adagrad_step(param, grad, self.state["sum"], lr=self.lr, eps=self.eps)


class SGD(Optimizer):
    """torch.optim.SGD with momentum μ (no dampening, not Nesterov): b <- g at the first step,
    then b <- μ·b + g; p <- p - lr·b."""

    name = "sgd"
    state_names = ("momentum_buffer",)
    default_momentum = 0.9

    def __init__(self, params, lr, momentum=default_momentum):
        super().__init__(params, lr)
        self.momentum = _nonnegative("momentum", momentum)

    def _hyperparameters(self):
        return {"momentum": self.momentum}

    def _update(self, param, grad):
        _core.sgd_momentum_step(
            param,
            grad,
            self.state["momentum_buffer"],
            lr=self.lr,
            momentum=self.momentum,
            first_step=self.step_count == 1,
        )


def _nonnegative(name: str, value: float) -> float:
    """A finite hyperparameter >= 0, as torch.optim requires of lr, eps and momentum."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number >= 0, got {value!r}")
    if not 0.0 <= value < math.inf:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


OPTIMIZERS = {optimizer.name: optimizer for optimizer in (Adam, Adagrad, SGD)}


def make_optimizer(name: str, params: ParameterVector, lr: float | None) -> Optimizer:
    if name not in OPTIMIZERS:
        raise SettingError.invalid(
            "optimizer", f"expected one of {', '.join(OPTIMIZERS)}, got {name!r}"
        )
    return OPTIMIZERS[name](params, DEFAULT_LEARNING_RATES[name] if lr is None else lr)


def clip_grad_norm(grad: np.ndarray, max_norm: float) -> float:
    """Scale the gradient vector in place so that its L2 norm is at most max_norm, as
    torch.nn.utils.clip_grad_norm_ does over all the parameters' gradients (factor
    max_norm / (norm + 1e-6), capped at 1); returns the norm before clipping."""
    # C++ twin: training_step in cpp/src/kernels/training_step.cpp, the core's whole step
    total_norm = math.sqrt(float(np.dot(grad, grad)))
    clip_coef = max_norm / (total_norm + 1e-6)
    # torch multiplies by min(coef, 1), which a NaN norm makes NaN; a factor of 1 changes nothing
    if not clip_coef >= 1.0:
        with np.errstate(invalid="ignore"):  # an infinity times 0: NaN, as torch gives, unwarned
            grad *= clip_coef
    return total_norm
