# The types of bptt._core, the compiled core's bindings (cpp/bindings/register_*.cpp): written
# from their signatures and docstrings; tests/test_core_stubs.py checks that every function and
# argument here is the module's. Array arguments are anything NumPy converts (the core checks
# their dtypes and shapes); float results are float32 or float64 like the params.

from typing import Any, SupportsFloat, SupportsIndex, SupportsInt, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

_Float: TypeAlias = NDArray[np.floating[Any]]
_Number: TypeAlias = SupportsFloat | SupportsIndex
_Count: TypeAlias = SupportsInt | SupportsIndex

def loss_and_grad(
    U: ArrayLike,
    W: ArrayLike,
    b: ArrayLike,
    V: ArrayLike,
    c: ArrayLike,
    inputs: ArrayLike,
    targets: ArrayLike,
    h0: ArrayLike | None = None,
    activation: object = "tanh",
    reduction: object = "sum",
    check_finite: bool = True,
    input_grad: bool = True,
    out: object = None,
    memory_budget: int | None = None,
    compute_dtype: object = None,
) -> tuple[float, dict[str, _Float], _Float]:
    """L and its gradients for the RNN with softmax head: (loss, grads, h_last)."""

def memory_plan(
    steps: _Count,
    batch: _Count,
    input_size: _Count,
    hidden_size: _Count,
    output_size: _Count,
    dtype: str = "float32",
    tokens: bool = False,
    memory_budget: int | None = None,
    compute_dtype: object = None,
) -> dict[str, Any]:
    """What loss_and_grad would do with its working memory for this problem."""

def layer_forward(
    U: ArrayLike,
    W: ArrayLike,
    b: ArrayLike,
    inputs: ArrayLike,
    h0: ArrayLike | None = None,
    activation: object = "tanh",
    lengths: ArrayLike | None = None,
    reverse: bool = False,
    check_finite: bool = True,
    compute_dtype: object = None,
) -> _Float:
    """States (T + 1, B, H) of the recurrent layer: h0 in slot 0 and h_t in slot t + 1
    (reverse: h_t in slot t and h0 in slot T)."""

def layer_backward(
    U: ArrayLike,
    W: ArrayLike,
    b: ArrayLike,
    inputs: ArrayLike,
    hidden: ArrayLike,
    h0: ArrayLike | None = None,
    d_hidden: ArrayLike | None = None,
    d_h_last: ArrayLike | None = None,
    activation: object = "tanh",
    lengths: ArrayLike | None = None,
    reverse: bool = False,
    check_finite: bool = True,
    input_grad: bool = True,
    compute_dtype: object = None,
) -> dict[str, _Float]:
    """Gradients of U, W, b, h0 (and x for float inputs) from dL/dh_t and dL/dh_T."""

def head_logits(
    V: ArrayLike,
    c: ArrayLike,
    hidden: ArrayLike,
    check_finite: bool = True,
    compute_dtype: object = None,
) -> _Float:
    """Logits c + V h_t for hidden states (T, B, H)."""

def head_loss_and_grad(
    V: ArrayLike,
    c: ArrayLike,
    hidden: ArrayLike,
    targets: ArrayLike,
    reduction: object = "sum",
    check_finite: bool = True,
    compute_dtype: object = None,
) -> tuple[float, dict[str, _Float], _Float]:
    """Softmax cross-entropy of the head: (loss, {V, c}, dL/dhidden)."""

def set_num_threads(n: _Count) -> None: ...
def get_num_threads() -> int: ...
def release_scratch() -> int:
    """Frees the calling thread's kept scratch and the kept memory of freed results; its bytes."""

def available_memory_bytes() -> int:
    """Free or reclaimable RAM and free swap, the bound of the core's allocation check."""

def build_info() -> dict[str, Any]:
    """The chosen instruction set, the available ones, Eigen's version, compiler, threads, how
    products with bfloat16 operands run (bfloat16_products) and how threads share each step of
    a recurrence (step_shares)."""

def adagrad_step(
    param: ArrayLike, grad: ArrayLike, sum: ArrayLike, lr: _Number, eps: _Number
) -> None:
    """torch.optim.Adagrad's step, in place on the vectors param and sum."""

def adam_step(
    param: ArrayLike,
    grad: ArrayLike,
    exp_avg: ArrayLike,
    exp_avg_sq: ArrayLike,
    lr: _Number,
    beta1: _Number,
    beta2: _Number,
    eps: _Number,
    step: _Count,
) -> None:
    """torch.optim.Adam's update number `step` (from 1), in place on param, exp_avg and
    exp_avg_sq, with its bias corrections."""

def sgd_momentum_step(
    param: ArrayLike,
    grad: ArrayLike,
    buffer: ArrayLike,
    lr: _Number,
    momentum: _Number,
    first_step: bool,
) -> None:
    """torch.optim.SGD's step with momentum, in place on param and buffer."""

class TrainingStep:
    """bptt train's step in one call: loss and gradients of a chunk of token streams (mean
    reduction), clipping by the global norm, and the optimizer's update, on vectors laid out
    as U, W, b (each layer's, layer by layer), V, c."""

    def __init__(
        self,
        param: ArrayLike,
        grad: ArrayLike,
        states: tuple[ArrayLike, ...],
        input_size: _Count,
        hidden_size: _Count,
        output_size: _Count,
        activation: object,
        max_norm: _Number,
        optimizer: object,
        lr: _Number,
        eps: _Number = 0.0,
        beta1: _Number = 0.0,
        beta2: _Number = 0.0,
        momentum: _Number = 0.0,
        memory_budget: int | None = None,
        compute_dtype: object = None,
        layers: _Count = 1,
    ) -> None: ...
    def __call__(
        self,
        inputs: ArrayLike,
        targets: ArrayLike,
        h0: ArrayLike,
        h_last: ArrayLike,
        step: _Count,
    ) -> tuple[float, float, bool]:
        """One step on token ids (T, B) and targets (T, B) from the state h0 (B, H), or
        (layers, B, H) for a stack; writes the state after it into h_last and returns (loss,
        grad_norm, updated)."""
