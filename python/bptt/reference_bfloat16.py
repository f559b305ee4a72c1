"""The NumPy oracle of compute_dtype="bfloat16": the model of bptt.reference with every product
taking bfloat16 operands and accumulating in float32, written one formula a line.

The rule (README "bfloat16 products"), which the core implements:

    U, W, V and dense inputs x are rounded to bfloat16 once; h_0 and each h_t as it is produced
    (the rounded h_t is the state: the next step, the head, σ' and dW read it); the gradients
    that are products' operands, dO_t = dL/do_t and da_t = dL/da_t, as they are produced (dL/dh
    = dO V + Wᵀ da, dV, dW, dU, dx, dh_0 and the bias gradients read the rounded values).
    Everything else (b, c, the pre-activations, the softmax, the loss, σ'(a) from the rounded
    h, every sum and every gradient returned) is float32.

bfloat16 is float32's upper 16 bits (8 significant bits, unit roundoff 2**-8): rounding is done
on the bits, round-to-nearest-even, NaN kept. The forward chain without lengths or reverse
(what loss_and_grad takes).
"""

# ruff: noqa: RUF002, RUF003  (σ is the model's symbol for the activation)

from collections.abc import Callable, Mapping
from typing import cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bptt import reference
from bptt.results import LossAndGrad

__all__ = [
    "GRADIENT_RELATIVE_ERROR",
    "LOSS_RELATIVE_ERROR",
    "UNIT_ROUNDOFF",
    "loss_and_grad",
    "relative_error",
    "round_to_bfloat16",
]

UNIT_ROUNDOFF = 2.0**-8  # bfloat16's: 8 significant bits, round-to-nearest
# What bfloat16 products give against the exact (float64) model at the benchmark sizes, derived
# from UNIT_ROUNDOFF in tests/test_bfloat16.py's docstring: every gradient's relative Frobenius
# error (about 8 u), and the loss's relative error (about 2.5 u).
GRADIENT_RELATIVE_ERROR = 3e-2
LOSS_RELATIVE_ERROR = 1e-2


def relative_error(actual: ArrayLike, expected: ArrayLike) -> float:
    """||actual - expected||_F / ||expected||_F, in float64 (the difference's norm where expected
    is zero): the measure the bounds above are stated in."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    norm = np.linalg.norm(expected)
    difference = np.linalg.norm(actual - expected)
    return float(difference / norm) if norm > 0 else float(difference)


def round_to_bfloat16(values: ArrayLike) -> NDArray[np.float32]:
    """float32 values rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.asarray(values, np.float32).view(np.uint32)
    nan = (bits & 0x7FFFFFFF) > 0x7F800000
    lower_half_odd = (bits >> 16) & 1
    rounded = (bits + np.uint32(0x7FFF) + lower_half_odd) & np.uint32(0xFFFF0000)
    kept = np.where(nan, (bits | 0x00400000) & 0xFFFF0000, rounded).astype(np.uint32)
    return kept.view(np.float32)


# σ'(a) in terms of h = σ(a): the core keeps h alone, rounded.
Elementwise = Callable[[np.ndarray], np.ndarray]
_DERIVATIVE_OF_STATE: dict[str, Elementwise] = {
    "tanh": lambda h: 1 - h * h,
    "sigmoid": lambda h: h * (1 - h),
    "relu": lambda h: (h > 0).astype(np.float32),
    "identity": np.ones_like,
}


def loss_and_grad(
    params: Mapping[str, NDArray[np.float32]],
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
) -> LossAndGrad:
    """bptt.reference.loss_and_grad's loss and gradients with bfloat16 product operands, for
    float32 params, batched inputs (T, B, D) floats or (T, B) token ids, class-id targets (T, B)
    (IGNORE = -1: no loss) and h0 (B, H) or None."""
    bf = round_to_bfloat16
    f32 = np.float32
    U, W, V = (bf(params[name]) for name in "UWV")  # rounded once a call
    b, c = (np.asarray(params[name], f32) for name in "bc")
    H, D = U.shape
    O = V.shape[0]
    inputs = np.asarray(inputs)
    tokens = np.issubdtype(inputs.dtype, np.integer)
    x = reference._one_hot(inputs, D, f32, "inputs") if tokens else bf(inputs)
    T, B = x.shape[:2]
    sigma = cast(Elementwise, reference.ACTIVATIONS[activation][0])
    d_sigma = _DERIVATIVE_OF_STATE[activation]

    # Forward: states stored rounded, h[0] = h_0 and h[t + 1] = h_t.
    h = np.zeros((T + 1, B, H), f32)
    h[0] = 0 if h0 is None else bf(h0)
    for t in range(T):
        a = b + h[t] @ W.T + x[t] @ U.T  # a_t = b + W h_{t-1} + U x_t, float32 sums
        h[t + 1] = bf(sigma(a).astype(f32))  # h_t = bf16(σ(a_t))

    # Head: logits, loss and dO = dL/do, rounded.
    logits = c + h[1:] @ V.T  # o_t = c + V h_t
    ids = np.asarray(targets)
    y = reference._one_hot(ids, O, f32, "targets", allow_ignore=True)
    counted = int(np.count_nonzero(ids != reference.IGNORE))
    scale = f32(1.0 if reduction == "sum" else (1.0 / counted if counted else 0.0))
    log_y_hat = reference._log_softmax(logits)
    loss = -float(scale) * float(np.sum(y * log_y_hat, dtype=np.float64))
    dO = bf(scale * (np.exp(log_y_hat) * y.sum(axis=-1, keepdims=True) - y))

    # Backward: da_t rounded as produced.
    grads = {name: np.zeros_like(params[name], f32) for name in "UWbVc"}
    dx = np.zeros((T, B, D), f32)
    d_later = np.zeros((B, H), f32)  # Wᵀ da_{t+1}
    for t in reversed(range(T)):
        dh = dO[t] @ V + d_later  # dL/dh_t = Vᵀ dO_t + Wᵀ da_{t+1}
        da = bf(dh * d_sigma(h[t + 1]))  # da_t = bf16(dh_t ⊙ σ'(a_t)), σ' from the rounded h_t
        grads["W"] += da.T @ h[t]  # dW += da_t h_{t-1}ᵀ
        grads["U"] += da.T @ x[t]  # dU += da_t x_tᵀ
        grads["b"] += da.sum(axis=0)  # db += Σ da_t
        grads["V"] += dO[t].T @ h[t + 1]  # dV += dO_t h_tᵀ
        grads["c"] += dO[t].sum(axis=0)  # dc += Σ dO_t
        dx[t] = da @ U  # dx_t = Uᵀ da_t
        d_later = da @ W  # Wᵀ da_t
    grads["h0"] = d_later  # dh_0 = Wᵀ da_1
    if not tokens:
        grads["x"] = dx
    return LossAndGrad(loss, grads, h[T])
