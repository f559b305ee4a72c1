"""The public functions: NumPy arrays in, NumPy arrays out, the work done by the compiled core."""

from collections.abc import Mapping

import numpy as np

from bptt import _core
from bptt.reference import ForwardResult, LossAndGrad

PARAM_NAMES = ("U", "W", "b", "V", "c")


def _unpack(params) -> tuple:
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params: expected a dict with keys U, W, b, V, c, got {type(params).__name__}"
        )
    try:  # spelled out: this runs on every call, and a generator costs microseconds
        arrays = (params["U"], params["W"], params["b"], params["V"], params["c"])
    except KeyError:
        arrays = None
    if arrays is None or len(params) != len(PARAM_NAMES):
        missing = [name for name in PARAM_NAMES if name not in params]
        extra = [repr(name) for name in params if name not in PARAM_NAMES]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []
        )
        raise ValueError(f"params: expected exactly the keys U, W, b, V, c; {'; '.join(problems)}")
    return arrays


def _flag(value, name: str) -> bool:
    """A bool argument: None or a string would otherwise pass for False or True."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _as_array(value, name: str) -> np.ndarray:
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:  # e.g. ragged nested lists
        raise ValueError(
            f"{name}: expected an array, got {type(value).__name__}: {error}"
        ) from None


def _is_unbatched(inputs: np.ndarray) -> bool:
    """(T, D) float vectors or (T,) token ids: one sequence without a batch axis."""
    return inputs.ndim == (1 if inputs.dtype.kind in "iu" else 2)


def loss_and_grad(
    params: Mapping[str, np.ndarray],
    inputs,
    targets,
    *,
    h0=None,
    activation: str = "tanh",
    reduction: str = "sum",
    check_finite: bool = True,
    input_grad: bool = True,
    out: dict[str, np.ndarray] | None = None,
) -> LossAndGrad:
    """L = -Σ_t y_t · log softmax(c + V h_t) and its exact gradients by BPTT.

    inputs: float (T, B, D) or integer token ids (T, B); targets: class ids (T, B), -1 meaning no
    loss at that step, or float soft targets (T, B, O). Unbatched (T, D) / (T,) inputs give
    unbatched results. Returns (loss, grads {U, W, b, V, c, h0, and x for float inputs}, h_last);
    input_grad=False skips x (one product of (T·B, H) by (H, D)) when nothing needs dL/dx.
    out: arrays, by gradient name (some of those grads has), that the core writes those
    gradients into, and returns as them, instead of new arrays: writable, C-contiguous, of the
    gradient's shape and the params' dtype, sharing memory with no argument and no other.
    """
    weights = _unpack(params)
    check_finite, input_grad = _flag(check_finite, "check_finite"), _flag(input_grad, "input_grad")
    options = (activation, reduction, check_finite, input_grad)
    inputs = _as_array(inputs, "inputs")
    if not _is_unbatched(inputs):
        return LossAndGrad(*_core.loss_and_grad(*weights, inputs, targets, h0, *options, out))
    targets = np.asarray(targets)[:, None] if np.ndim(targets) else targets
    h0 = None if h0 is None else np.asarray(h0)[None]
    loss, grads, h_last = _core.loss_and_grad(
        *weights, inputs[:, None], targets, h0, *options, _batched_out(out, weights, inputs)
    )
    grads["h0"] = out["h0"] if out and "h0" in out else grads["h0"][0]
    if "x" in grads:
        grads["x"] = out["x"] if out and "x" in out else grads["x"][:, 0]
    return LossAndGrad(loss, grads, h_last[0])


def _batched_out(out, weights, inputs):
    """An unbatched call's out arrays for h0 (H,) and x (T, D) as the batched views the core
    writes, (1, H) and (T, 1, D), after checking their unbatched shapes (when the weights'
    own shapes are sound: the core reports theirs first); anything else is passed on for the
    core to check."""
    if not isinstance(out, Mapping):
        return out
    U = weights[0]
    H, D = np.shape(U) if np.ndim(U) == 2 else (None, None)
    expected = {"h0": ((H,), "(H,)", 0), "x": ((len(inputs), D), "(T, D)", 1)}
    batched = dict(out)
    for name, (shape, symbols, batch_axis) in expected.items():
        array = out.get(name)
        if not isinstance(array, np.ndarray):
            continue
        if array.shape != shape and (H is not None or array.ndim != len(shape)):
            raise ValueError(
                f"out['{name}']: expected shape {symbols} = {shape} for unbatched inputs, "
                f"got {array.shape}"
            )
        batched[name] = np.expand_dims(array, batch_axis)
    return batched


def forward(
    params: Mapping[str, np.ndarray],
    inputs,
    *,
    h0=None,
    activation: str = "tanh",
    check_finite: bool = True,
) -> ForwardResult:
    """Hidden states (T, B, H), logits (T, B, O) and the last state h_T (B, H)."""
    U, W, b, V, c = _unpack(params)
    check_finite = _flag(check_finite, "check_finite")
    inputs = _as_array(inputs, "inputs")
    unbatched = _is_unbatched(inputs)
    if unbatched:
        inputs = inputs[:, None]
        h0 = None if h0 is None else np.asarray(h0)[None]
    # states[0] is h0 and states[1:] the hidden states h_1..h_T, one buffer without copies.
    states = _core.layer_forward(
        U, W, b, inputs, h0, activation=activation, check_finite=check_finite
    )
    hidden = states[1:]
    logits = _core.head_logits(V, c, hidden, check_finite=check_finite)
    # h_T copied out of hidden[-1]: a caller changing the hidden states in place (a mask, a
    # dropout) must not change the state it carries to the next call, as the oracle's does not.
    h_last = states[-1].copy()
    if unbatched:
        return ForwardResult(hidden[:, 0], logits[:, 0], h_last[0])
    return ForwardResult(hidden, logits, h_last)


MAX_THREADS = 1024  # the core's bound: OpenMP can fail, uncatchably, to start many more


def set_num_threads(n: int) -> None:
    """Threads for the core's products (default: the OpenMP default, usually every core)."""
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 1 <= n <= MAX_THREADS:
        raise ValueError(f"n: expected an integer in [1, {MAX_THREADS}], got {n!r}")
    _core.set_num_threads(int(n))


def get_num_threads() -> int:
    return _core.get_num_threads()


def release_scratch() -> int:
    """Frees the scratch buffers the calling thread keeps for its next call (up to 64 MiB, so
    that repeated calls do not page them in again) and the kept memory of result arrays already
    freed (up to 64 MiB); returns how many bytes were freed."""
    return _core.release_scratch()
