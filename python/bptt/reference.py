"""The NumPy oracle: the same functions as the fast core, written for clarity, not speed.

An Elman RNN with a softmax output at every step (Goodfellow et al., Deep Learning 10.2.2):

    a_t = b + W h_{t-1} + U x_t     h_t = σ(a_t)     o_t = c + V h_t
    ŷ_t = softmax(o_t)              L = - Σ_t y_t · log ŷ_t

It is two pieces, each a pair of functions here as in the fast API: the recurrent layer
(layer_forward, and layer_backward from any upstream gradient dL/dh_t) and the softmax head
(head_logits, head_loss_and_grad); forward and loss_and_grad compose them.

Plain loops over t, vectorised over the batch: a batch is a stack of row vectors, so the
column-vector formula ``W h`` reads ``h @ W.T`` here. Pure NumPy, usable standalone.
"""

# ruff: noqa: RUF002, RUF003  (σ is the model's symbol for the activation)

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bptt import _arguments, _model
from bptt.results import ForwardResult, HeadLossAndGrad, LayerForwardResult, LossAndGrad

__all__ = [
    "ACTIVATIONS",
    "IGNORE",
    "ForwardResult",
    "HeadLossAndGrad",
    "LayerForwardResult",
    "LossAndGrad",
    "forward",
    "head_logits",
    "head_loss_and_grad",
    "layer_backward",
    "layer_forward",
    "loss_and_grad",
    "stack_loss_and_grad",
]

IGNORE = -1  # an integer target equal to this contributes no loss at that step
_LAYER_NAMES, _HEAD_NAMES = _model.PARAM_NAMES[:3], _model.PARAM_NAMES[3:]


def _sigmoid(a):
    return 0.5 * (1.0 + np.tanh(0.5 * a))  # the logistic σ, written so exp never overflows


_SIGMA_AND_DERIVATIVE = {
    "tanh": (np.tanh, lambda a: 1.0 - np.tanh(a) ** 2),
    "sigmoid": (_sigmoid, lambda a: _sigmoid(a) * (1.0 - _sigmoid(a))),
    "relu": (lambda a: np.maximum(a, 0.0), lambda a: (a > 0).astype(a.dtype)),  # σ'(0) = 0
    "identity": (lambda a: a, np.ones_like),
}
# activation name -> (σ, σ' as a function of the pre-activation a), for the model's activations
ACTIVATIONS = {name: _SIGMA_AND_DERIVATIVE[name] for name in _model.ACTIVATIONS}


def _one_hot(ids, n, dtype, name, allow_ignore=False):
    """Row k of the result is e_{ids[k]}; an IGNORE id (if allowed) gives the zero row."""
    low = IGNORE if allow_ignore else 0
    if ids.size and (ids.min() < low or ids.max() >= n):
        raise ValueError(f"{name}: ids must lie in [{low}, {n}), got [{ids.min()}, {ids.max()}]")
    return (ids[..., None] == np.arange(n)).astype(dtype)


def _check_shape(array, shape, name):
    if array.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {array.shape}")


def _batched(array, name, unbatched_shape, batch_axis, dtype):
    """An optional float array of the batched shape, from the unbatched one when given so."""
    if array is None:
        return None
    array = np.array(array, dtype)
    if unbatched_shape is not None:
        _check_shape(array, unbatched_shape, name)
        array = np.expand_dims(array, batch_axis)
    return array


def _checked_params(params, names):
    """The params named (the layer's U, W, b, the head's V, c, or all), as arrays of float32 or
    float64 alike and of the model's shapes; TypeError or ValueError naming the first that is
    not, as the fast API's."""
    unpack = {
        _model.PARAM_NAMES: _arguments.model_params,
        _model.PARAM_NAMES[:3]: _arguments.layer_params,
        _model.PARAM_NAMES[3:]: _arguments.head_params,
    }[names]
    arrays = {
        name: _arguments.as_array(value, f"params[{name!r}]")
        for name, value in zip(names, unpack(params), strict=True)
    }
    first = names[0]
    dtype = arrays[first].dtype
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"params[{first!r}]: expected dtype float32 or float64, got {dtype}")
    if arrays[first].ndim != 2:
        raise ValueError(
            f"params[{first!r}]: expected a 2-d array, got shape {arrays[first].shape}"
        )
    # U (H, D) or V (O, H) gives the sizes the others must have
    sizes = dict(zip("HD" if first == "U" else "OH", arrays[first].shape, strict=True))
    if "V" in arrays and "H" in sizes:
        sizes["O"] = arrays["V"].shape[0] if arrays["V"].ndim == 2 else None
    axes = {"U": "HD", "W": "HH", "b": "H", "V": "OH", "c": "O"}
    for name, array in arrays.items():
        if array.dtype != dtype:
            raise TypeError(
                f"params[{name!r}]: expected dtype {dtype} like params[{first!r}], got {array.dtype}"
            )
        _arguments.check_shape(
            array.shape, f"params[{name!r}]", *((axis, sizes[axis]) for axis in axes[name])
        )
    return arrays


# ---------------------------------------------------------------------------------------------
# The recurrent layer: a_t = b + W h_{t-1} + U x_t, h_t = σ(a_t).


def _prepare(params, inputs, h0, activation):
    """Batched one-hot/float x (T, B, D), h_0 (B, H), σ, σ' and whether to drop the B axis."""
    _arguments.activation(activation)
    dtype, (H, D) = params["U"].dtype, params["U"].shape
    inputs = _arguments.as_array(inputs, "inputs")
    tokens = np.issubdtype(inputs.dtype, np.integer)
    if not (tokens or np.issubdtype(inputs.dtype, np.floating)):
        raise TypeError(
            f"inputs: expected float vectors or integer token ids, got dtype {inputs.dtype}"
        )
    if inputs.ndim not in ((1, 2) if tokens else (2, 3)) or (not tokens and inputs.shape[-1] != D):
        expected = "token ids (T, B) or (T,)" if tokens else f"(T, B, D) or (T, D) with D = {D}"
        raise ValueError(f"inputs: expected shape {expected}, got {inputs.shape}")
    unbatched = inputs.ndim == (1 if tokens else 2)
    if unbatched:
        inputs = inputs[:, None]
    x = _one_hot(inputs, D, dtype, "inputs") if tokens else inputs.astype(dtype)
    B = x.shape[1]
    h0 = _batched(h0, "h0", (H,) if unbatched else None, 0, dtype)
    if h0 is None:
        h0 = np.zeros((B, H), dtype)
    _check_shape(h0, (B, H), "h0")
    return x, h0, tokens, unbatched, ACTIVATIONS[activation]


def _real_steps(lengths, T, B, unbatched=False):
    """real[t, b]: whether step t is one of the lengths[b] real steps of sequence b (all are,
    without lengths); (T, B, 1), to select whole rows of states."""
    if lengths is None:
        return np.ones((T, B, 1), bool)
    if unbatched:
        raise ValueError(
            "lengths: per-sequence lengths need a batch (for one sequence, leave lengths None)"
        )
    lengths = _arguments.as_array(lengths, "lengths")
    if not np.issubdtype(lengths.dtype, np.integer):
        raise TypeError(f"lengths: expected integer lengths, got dtype {lengths.dtype}")
    _check_shape(lengths, (B,), "lengths")
    if B == 0:
        return np.ones((T, B, 1), bool)
    if lengths.size and (lengths.min() < 0 or lengths.max() > T):
        raise ValueError(f"lengths: must lie in [0, {T}], got [{lengths.min()}, {lengths.max()}]")
    return (np.arange(T)[:, None] < lengths)[..., None]


def _steps(T, B, reverse=False):
    """The order the recurrence runs in: t = 1 .. T, or T .. 1 when reversed (0-based here); for
    an empty batch none, whose steps change nothing (its T may be any number)."""
    if B == 0:
        return range(0)
    return range(T - 1, -1, -1) if reverse else range(T)


def _previous_state(hidden, h0, t, reverse):
    """The state step t reads: h_{t-1} (h_{t+1} when reversed), h_0 at the first step."""
    T = len(hidden)
    if reverse:
        return hidden[t + 1] if t < T - 1 else h0
    return hidden[t - 1] if t > 0 else h0


def _pre_activation(params, h_previous, x_t):
    return params["b"] + h_previous @ params["W"].T + x_t @ params["U"].T  # b + W h_{t-1} + U x_t


def _layer_forward(params, x, h0, sigma, real, reverse):
    """Pre-activations a_t and hidden states h_t, (T, B, H) each, and the last state."""
    T, B = x.shape[:2]
    a = np.zeros((T, B, params["W"].shape[0]), h0.dtype)
    hidden = np.zeros_like(a)
    h = h0
    for t in _steps(T, B, reverse):
        a[t] = _pre_activation(params, h, x[t])
        hidden[t] = h = np.where(real[t], sigma(a[t]), h)  # h_t = σ(a_t); padding keeps h
    return a, hidden, h


def _layer_backward(params, x, h0, a, hidden, dsigma, real, reverse, d_hidden, d_h_last):
    """dL/d(U, W, b, h0, x) from dL/dh_t for every t (d_hidden) and dL/dh_last (d_h_last),
    backwards through the steps in the reverse of the order they ran."""
    U, W = params["U"], params["W"]
    grads = {k: np.zeros_like(params[k]) for k in "UWb"}
    dx = np.zeros_like(x)
    # dL/dh_t from the steps after t: W^T da_{t+1}, and dL/dh_last at the last step
    d_later = np.zeros_like(h0) if d_h_last is None else d_h_last
    T, B = a.shape[:2]
    for t in reversed(_steps(T, B, reverse)):
        dh = np.where(real[t], d_hidden[t], 0) + d_later  # dh_t = dL/dh_t + W^T da_{t+1}
        da = np.where(real[t], dh * dsigma(a[t]), 0)  # da_t = dh_t ⊙ σ'(a_t)
        h_previous = _previous_state(hidden, h0, t, reverse)
        grads["W"] += da.T @ h_previous  # dW += da_t^T h_{t-1}
        grads["U"] += da.T @ x[t]  # dU += da_t^T x_t
        grads["b"] += da.sum(axis=0)  # db += Σ da_t
        dx[t] = da @ U  # dx_t = U^T da_t
        d_later = np.where(real[t], da @ W, dh)  # W^T da_t; a padded step passes dh_t on
    grads["h0"] = d_later  # dh_0 = W^T da_1
    grads["x"] = dx
    return grads


def layer_forward(
    params: Mapping[str, NDArray[np.floating]],
    inputs: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    lengths: ArrayLike | None = None,
    reverse: bool = False,
) -> LayerForwardResult:
    """h_t = σ(b + W h_{t-1} + U x_t) over inputs (T, B, D) floats or (T, B) token ids ((T, D) /
    (T,) unbatched): the hidden states (T, B, H) and the state after the last step run.

    lengths (B,): sequence b has lengths[b] real steps; a padded step keeps the state it reads.
    reverse: from t = T down to 1, h_t = σ(b + W h_{t+1} + U x_t)."""
    params = _checked_params(params, _LAYER_NAMES)
    x, h0, _, unbatched, (sigma, _) = _prepare(params, inputs, h0, activation)
    real = _real_steps(lengths, x.shape[0], x.shape[1], unbatched)
    _, hidden, h_last = _layer_forward(params, x, h0, sigma, real, reverse)
    if unbatched:
        return LayerForwardResult(hidden[:, 0], h_last[0])
    return LayerForwardResult(hidden, h_last)


def layer_backward(
    params: Mapping[str, NDArray[np.floating]],
    inputs: ArrayLike,
    hidden: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    d_hidden: ArrayLike | None = None,
    d_h_last: ArrayLike | None = None,
    activation: str = "tanh",
    lengths: ArrayLike | None = None,
    reverse: bool = False,
) -> dict[str, NDArray[np.floating]]:
    """dL/d(U, W, b, h0), and dL/dx for float inputs, given layer_forward's hidden states, the
    upstream gradients d_hidden = dL/dh_t (T, B, H) (ignored at padded steps) and d_h_last =
    dL/dh_last (B, H), None meaning zeros. The pre-activations a_t are computed again from the
    hidden states."""
    params = _checked_params(params, _LAYER_NAMES)
    x, h0, tokens, unbatched, (_, dsigma) = _prepare(params, inputs, h0, activation)
    T, B = x.shape[:2]
    H = params["W"].shape[0]
    per_step = (T, H) if unbatched else None
    hidden = _batched(hidden, "hidden", per_step, 1, x.dtype)
    _check_shape(hidden, (T, B, H), "hidden")
    d_hidden = _batched(d_hidden, "d_hidden", per_step, 1, x.dtype)
    if d_hidden is None:
        d_hidden = np.zeros_like(hidden)
    _check_shape(d_hidden, (T, B, H), "d_hidden")
    d_h_last = _batched(d_h_last, "d_h_last", (H,) if unbatched else None, 0, x.dtype)
    if d_h_last is not None:
        _check_shape(d_h_last, (B, H), "d_h_last")
    real = _real_steps(lengths, T, B, unbatched)
    a = np.zeros_like(hidden)
    for t in _steps(T, B, reverse):
        a[t] = _pre_activation(params, _previous_state(hidden, h0, t, reverse), x[t])

    grads = _layer_backward(params, x, h0, a, hidden, dsigma, real, reverse, d_hidden, d_h_last)
    if tokens:
        del grads["x"]
    return _unbatched_grads(grads) if unbatched else grads


def _unbatched_grads(grads):
    """dL/dh0 (H,) and dL/dx (T, D) without their batch axis of one."""
    grads["h0"] = grads["h0"][0]
    if "x" in grads:
        grads["x"] = grads["x"][:, 0]
    return grads


# ---------------------------------------------------------------------------------------------
# The softmax head: o_t = c + V h_t, ŷ_t = softmax(o_t), L = - Σ_t y_t · log ŷ_t.


def _head_logits(params, hidden):
    V, c = params["V"], params["c"]
    logits = np.zeros((*hidden.shape[:2], V.shape[0]), hidden.dtype)
    for t in _steps(*hidden.shape[:2]):
        logits[t] = c + hidden[t] @ V.T  # o_t = c + V h_t
    return logits


def _log_softmax(o):
    """log ŷ = o - logsumexp(o), with the row max subtracted so large logits stay finite."""
    shifted = o - o.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _check_reduction(reduction):
    _arguments.reduction(reduction)


def _head_loss_and_grad(params, hidden, targets, reduction, unbatched):
    """The loss, dL/d(V, c) and dL/dh_t (T, B, H) for batched hidden states; targets as given
    (unbatched when the call is)."""
    _check_reduction(reduction)
    V = params["V"]
    logits = _head_logits(params, hidden)
    T, B, O = logits.shape

    targets = np.asarray(targets)
    ids = np.issubdtype(targets.dtype, np.integer)
    _check_shape(targets, ((T,) if unbatched else (T, B)) + (() if ids else (O,)), "targets")
    if unbatched:
        targets = targets[:, None]
    if ids:
        y = _one_hot(targets, O, hidden.dtype, "targets", allow_ignore=True)
        count = int(np.count_nonzero(targets != IGNORE))
    else:
        y = targets.astype(hidden.dtype)
        count = T * B
    # "mean" divides by the counted targets; with none counted, loss and grads are zero
    scale = 1.0 if reduction == "sum" else (1.0 / count if count else 0.0)

    log_y_hat = _log_softmax(logits)
    loss = -scale * float(np.sum(y * log_y_hat))  # L = - Σ_t y_t · log ŷ_t
    # dL/do_t = softmax(o_t) Σ_k y_tk - y_t  (the softmax cross-entropy gradient)
    d_logits = scale * (np.exp(log_y_hat) * y.sum(axis=-1, keepdims=True) - y)

    grads = {k: np.zeros_like(params[k]) for k in "Vc"}
    d_hidden = np.zeros_like(hidden)
    for t in reversed(_steps(T, B)):  # from the last step, as BPTT meets them
        dO = d_logits[t]
        grads["V"] += dO.T @ hidden[t]  # dV += dO_t^T h_t
        grads["c"] += dO.sum(axis=0)  # dc += Σ dO_t
        d_hidden[t] = dO @ V  # dL/dh_t through o_t: V^T dO_t
    return loss, grads, d_hidden


def _head_hidden(params, hidden):
    """Hidden states (T, B, H) of the params' dtype, and whether they came unbatched (T, H)."""
    hidden = _arguments.as_array(hidden, "hidden")
    if not np.issubdtype(hidden.dtype, np.floating):
        raise TypeError(f"hidden: expected float states, got dtype {hidden.dtype}")
    H = params["V"].shape[1]
    if hidden.ndim not in (2, 3) or hidden.shape[-1] != H:
        raise ValueError(
            f"hidden: expected shape (T, B, H) or (T, H) with H = {H}, got {hidden.shape}"
        )
    hidden = hidden.astype(params["V"].dtype, copy=False)
    unbatched = hidden.ndim == 2
    return (hidden[:, None] if unbatched else hidden), unbatched


def head_logits(
    params: Mapping[str, NDArray[np.floating]], hidden: ArrayLike
) -> NDArray[np.floating]:
    """o_t = c + V h_t for hidden states (T, B, H) ((T, H) unbatched): logits (T, B, O)."""
    params = _checked_params(params, _HEAD_NAMES)
    hidden, unbatched = _head_hidden(params, hidden)
    logits = _head_logits(params, hidden)
    return logits[:, 0] if unbatched else logits


def head_loss_and_grad(
    params: Mapping[str, NDArray[np.floating]],
    hidden: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "sum",
) -> HeadLossAndGrad:
    """L = - Σ_t y_t · log softmax(c + V h_t) (or its mean over counted targets) for hidden
    states (T, B, H), its gradients dL/d(V, c) and dL/dh_t (T, B, H), the layer's upstream
    gradient. targets as in loss_and_grad; (T, H) hidden states take unbatched targets."""
    params = _checked_params(params, _HEAD_NAMES)
    hidden, unbatched = _head_hidden(params, hidden)
    loss, grads, d_hidden = _head_loss_and_grad(params, hidden, targets, reduction, unbatched)
    return HeadLossAndGrad(loss, grads, d_hidden[:, 0] if unbatched else d_hidden)


# ---------------------------------------------------------------------------------------------
# The whole model: the layer, then the head at every step.


def forward(
    params: Mapping[str, NDArray[np.floating]],
    inputs: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
) -> ForwardResult:
    """Run the RNN over inputs (T, B, D) floats or (T, B) token ids; (T, D) / (T,) unbatched."""
    params = _checked_params(params, _model.PARAM_NAMES)
    x, h0, _, unbatched, (sigma, _) = _prepare(params, inputs, h0, activation)
    real = _real_steps(None, *x.shape[:2])
    _, hidden, h_last = _layer_forward(params, x, h0, sigma, real, False)
    logits = _head_logits(params, hidden)
    if unbatched:
        return ForwardResult(hidden[:, 0], logits[:, 0], h_last[0])
    return ForwardResult(hidden, logits, h_last)


def loss_and_grad(
    params: Mapping[str, NDArray[np.floating]],
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    out: Mapping[str, NDArray[np.floating]] | None = None,
) -> LossAndGrad:
    """L = - Σ_t y_t · log ŷ_t (or its mean over counted targets) and dL/d(U, W, b, V, c, h0, x).

    targets: class ids (T, B), IGNORE = -1 meaning no loss there, or soft targets y (T, B, O).
    out: arrays, by gradient name, that the gradients are copied into and returned as.
    """
    _check_reduction(reduction)
    params = _checked_params(params, _model.PARAM_NAMES)
    x, h0, tokens, unbatched, (sigma, dsigma) = _prepare(params, inputs, h0, activation)
    real = _real_steps(None, *x.shape[:2])
    a, hidden, h_last = _layer_forward(params, x, h0, sigma, real, False)
    loss, head_grads, d_hidden = _head_loss_and_grad(params, hidden, targets, reduction, unbatched)
    layer_grads = _layer_backward(params, x, h0, a, hidden, dsigma, real, False, d_hidden, None)

    grads = {k: layer_grads[k] for k in "UWb"} | head_grads | {"h0": layer_grads["h0"]}
    if not tokens:
        grads["x"] = layer_grads["x"]
    if unbatched:
        grads = _unbatched_grads(grads)
        h_last = h_last[0]
    for name, array in (out or {}).items():
        if name not in grads:
            raise ValueError(f"out: unexpected key {name!r}; expected some of {', '.join(grads)}")
        np.copyto(array, grads[name])
        grads[name] = array
    return LossAndGrad(loss, grads, h_last)


# ---------------------------------------------------------------------------------------------
# A stack of L layers: layer k reads layer k - 1's states, the head reads layer L's.


def stack_loss_and_grad(
    layers: list[Mapping[str, NDArray[np.floating]]],
    head: Mapping[str, NDArray[np.floating]],
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
) -> tuple[float, list[dict[str, NDArray[np.floating]]], dict[str, NDArray[np.floating]]]:
    """L of the stack h_t^(k) = σ(b^(k) + W^(k) h_{t-1}^(k) + U^(k) h_t^(k-1)), h_t^(0) = x_t,
    o_t = c + V h_t^(L); its gradients: one dict U, W, b, h0 per layer, and the head's V, c.

    layers: each layer's U, W, b, from the input upwards; head: V, c; inputs (T, B, D) floats or
    (T, B) token ids; h0: (L, B, H) or None (zeros); targets and reduction as loss_and_grad's."""
    _check_reduction(reduction)
    layers = [_checked_params(params, _LAYER_NAMES) for params in layers]
    head = _checked_params(head, _HEAD_NAMES)
    sigma, dsigma = ACTIVATIONS[_arguments.activation(activation)]
    h0 = None if h0 is None else np.asarray(h0)
    x, first_h0, *_ = _prepare(layers[0], inputs, None if h0 is None else h0[0], activation)
    T, B = x.shape[:2]
    real = _real_steps(None, T, B)
    h0s = [first_h0] + [
        np.zeros_like(first_h0) if h0 is None else np.asarray(h0[k], first_h0.dtype)
        for k in range(1, len(layers))
    ]
    below, runs = x, []  # runs[k]: layer k's input, a_t and h_t
    for params, state in zip(layers, h0s, strict=True):
        a, hidden, _ = _layer_forward(params, below, state, sigma, real, False)
        runs.append((below, a, hidden))
        below = hidden  # h_t^(k) is layer k + 1's x_t
    loss, head_grads, d_hidden = _head_loss_and_grad(head, below, targets, reduction, False)
    layer_grads: list[dict] = [{} for _ in layers]
    for k in reversed(range(len(layers))):  # down the stack: dL/dh^(k-1) = U^(k)ᵀ da^(k)
        layer_input, a, hidden = runs[k]
        grads = _layer_backward(
            layers[k], layer_input, h0s[k], a, hidden, dsigma, real, False, d_hidden, None
        )
        d_hidden = grads.pop("x")
        layer_grads[k] = grads
    return loss, layer_grads, head_grads
