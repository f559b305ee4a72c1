"""The NumPy oracle: the same functions as the fast core, written for clarity, not speed.

An Elman RNN with a softmax output at every step (Goodfellow et al., Deep Learning 10.2.2):

    a_t = b + W h_{t-1} + U x_t     h_t = σ(a_t)     o_t = c + V h_t
    ŷ_t = softmax(o_t)              L = - Σ_t y_t · log ŷ_t

Plain loops over t, vectorised over the batch: a batch is a stack of row vectors, so the
column-vector formula ``W h`` reads ``h @ W.T`` here. Pure NumPy, usable standalone.
"""

# ruff: noqa: RUF002, RUF003  (σ is the note's symbol for the activation)

from typing import NamedTuple

import numpy as np

IGNORE = -1  # an integer target equal to this contributes no loss at that step


class ForwardResult(NamedTuple):
    hidden: np.ndarray  # (T, B, H): h_1 .. h_T
    logits: np.ndarray  # (T, B, O): o_1 .. o_T
    h_last: np.ndarray  # (B, H): h_T, or h_0 when T == 0


class LossAndGrad(NamedTuple):
    loss: float
    grads: dict[str, np.ndarray]  # U, W, b, V, c, h0, and x for float inputs
    h_last: np.ndarray  # (B, H): h_T, or h_0 when T == 0


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # the logistic σ, written so exp never overflows


# activation name -> (σ, σ' as a function of the pre-activation a)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "sigmoid": (_sigmoid, lambda a: _sigmoid(a) * (1.0 - _sigmoid(a))),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(a.dtype)),  # σ'(0) = 0
    "identity": (lambda a: a, np.ones_like),
}


def _one_hot(ids, n, dtype, name, allow_ignore=False):
    """Row k of the result is e_{ids[k]}; an IGNORE id (if allowed) gives the zero row."""
    low = IGNORE if allow_ignore else 0
    if ids.size and (ids.min() < low or ids.max() >= n):
        raise ValueError(f"{name}: ids must lie in [{low}, {n}), got [{ids.min()}, {ids.max()}]")
    return (ids[..., None] == np.arange(n)).astype(dtype)


def _check_shape(array, shape, name):
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")


def _prepare(params, inputs, h0, activation):
    """Batched one-hot/float x (T, B, D), h_0 (B, H), σ, σ' and whether to drop the B axis."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    dtype, (H, D) = params["U"].dtype, params["U"].shape
    inputs = np.asarray(inputs)
    tokens = np.issubdtype(inputs.dtype, np.integer)
    unbatched = inputs.ndim == (1 if tokens else 2)
    if unbatched:
        inputs = inputs[:, None]
    x = _one_hot(inputs, D, dtype, "inputs") if tokens else inputs.astype(dtype)
    B = x.shape[1]
    if h0 is None:
        h0 = np.zeros((B, H), dtype)
    else:
        h0 = np.array(h0, dtype)
        _check_shape(h0, (H,) if unbatched else (B, H), "h0")
        h0 = h0.reshape(B, H)
    return x, h0, tokens, unbatched, ACTIVATIONS[activation]


def _forward(params, x, h0, sigma):
    """Pre-activations a_1..a_T, hidden states h_1..h_T, logits o_1..o_T and h_T."""
    U, W, b, V, c = (params[k] for k in "UWbVc")
    T, B = x.shape[:2]
    a = np.zeros((T, B, W.shape[0]), h0.dtype)
    hidden = np.zeros_like(a)
    logits = np.zeros((T, B, V.shape[0]), h0.dtype)
    h = h0
    for t in range(T):
        a[t] = b + h @ W.T + x[t] @ U.T  # a_t = b + W h_{t-1} + U x_t
        hidden[t] = h = sigma(a[t])  # h_t = σ(a_t)
        logits[t] = c + h @ V.T  # o_t = c + V h_t
    return a, hidden, logits, h


def _log_softmax(o):
    """log ŷ = o - logsumexp(o), with the row max subtracted so large logits stay finite."""
    shifted = o - o.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def forward(params, inputs, *, h0=None, activation="tanh") -> ForwardResult:
    """Run the RNN over inputs (T, B, D) floats or (T, B) token ids; (T, D) / (T,) unbatched."""
    x, h0, _, unbatched, (sigma, _) = _prepare(params, inputs, h0, activation)
    _, hidden, logits, h_last = _forward(params, x, h0, sigma)
    if unbatched:
        return ForwardResult(hidden[:, 0], logits[:, 0], h_last[0])
    return ForwardResult(hidden, logits, h_last)


def loss_and_grad(
    params, inputs, targets, *, h0=None, activation="tanh", reduction="sum", out=None
) -> LossAndGrad:
    """L = - Σ_t y_t · log ŷ_t (or its mean over counted targets) and dL/d(U, W, b, V, c, h0, x).

    targets: class ids (T, B), IGNORE = -1 meaning no loss there, or soft targets y (T, B, O).
    out: arrays, by gradient name, that the gradients are copied into and returned as.
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    x, h0, tokens, unbatched, (sigma, dsigma) = _prepare(params, inputs, h0, activation)
    U, W, V = params["U"], params["W"], params["V"]
    a, hidden, logits, h_last = _forward(params, x, h0, sigma)
    T, B, O = logits.shape

    targets = np.asarray(targets)
    ids = np.issubdtype(targets.dtype, np.integer)
    _check_shape(targets, ((T,) if unbatched else (T, B)) + (() if ids else (O,)), "targets")
    if unbatched:
        targets = targets[:, None]
    if ids:
        y = _one_hot(targets, O, h0.dtype, "targets", allow_ignore=True)
        count = int(np.count_nonzero(targets != IGNORE))
    else:
        y = targets.astype(h0.dtype)
        count = T * B
    # "mean" divides by the counted targets; with none counted, loss and grads are zero
    scale = 1.0 if reduction == "sum" else (1.0 / count if count else 0.0)

    log_y_hat = _log_softmax(logits)
    loss = -scale * float(np.sum(y * log_y_hat))  # L = - Σ_t y_t · log ŷ_t
    # dL/do_t = softmax(o_t) Σ_k y_tk - y_t  (the softmax cross-entropy gradient)
    d_logits = scale * (np.exp(log_y_hat) * y.sum(axis=-1, keepdims=True) - y)

    grads = {k: np.zeros_like(params[k]) for k in "UWbVc"}
    dx = np.zeros_like(x)
    da_next = np.zeros_like(h0)  # da_{T+1} = 0: nothing flows back from beyond the end
    for t in reversed(range(T)):
        dO = d_logits[t]
        grads["V"] += dO.T @ hidden[t]  # dV += dO_t^T h_t
        grads["c"] += dO.sum(axis=0)  # dc += Σ dO_t
        dh = dO @ V + da_next @ W  # dh_t = V^T dO_t + W^T da_{t+1}
        da = dh * dsigma(a[t])  # da_t = dh_t ⊙ σ'(a_t)
        h_prev = hidden[t - 1] if t > 0 else h0
        grads["W"] += da.T @ h_prev  # dW += da_t^T h_{t-1}
        grads["U"] += da.T @ x[t]  # dU += da_t^T x_t
        grads["b"] += da.sum(axis=0)  # db += Σ da_t
        dx[t] = da @ U  # dx_t = U^T da_t
        da_next = da
    grads["h0"] = da_next @ W  # dh_0 = W^T da_1
    if not tokens:
        grads["x"] = dx

    if unbatched:
        grads["h0"] = grads["h0"][0]
        if "x" in grads:
            grads["x"] = grads["x"][:, 0]
        h_last = h_last[0]
    for name, array in (out or {}).items():
        if name not in grads:
            raise ValueError(f"out: unexpected key {name!r}; expected some of {', '.join(grads)}")
        np.copyto(array, grads[name])
        grads[name] = array
    return LossAndGrad(loss, grads, h_last)
