"""The public functions of the whole model: NumPy arrays in, NumPy arrays out, the work done by
the compiled core. The recurrent layer and the softmax head on their own are in
bptt._layer_and_head."""

# ruff: noqa: RUF002

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bptt import _arguments, _core
from bptt._model import PARAM_NAMES  # noqa: F401  (read here by bptt.training)
from bptt.memory_budget import parse_memory_budget
from bptt.results import ForwardResult, LossAndGrad

FloatArray = NDArray[np.floating]


def loss_and_grad(
    params: Mapping[str, ArrayLike],
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    check_finite: bool = True,
    input_grad: bool = True,
    out: Mapping[str, FloatArray] | None = None,
    memory_budget: int | str | None = None,
    compute_dtype: str | None = None,
) -> LossAndGrad:
    """L = -Σ_t y_t · log softmax(c + V h_t) and its exact gradients by BPTT.

    params: U (H, D), W (H, H), b (H,), V (O, H), c (O,), float32 or float64 alike (exactly
    these keys). inputs: float (T, B, D) or integer token ids (T, B); targets: class ids (T, B),
    -1 meaning no loss at that step, or float soft targets (T, B, O); h0: (B, H) or None (zeros).
    Unbatched (T, D) / (T,) inputs take (T,) / (T, O) targets and an (H,) h0, and give unbatched
    results. Returns (loss, grads {U, W, b, V, c, h0, and x for float inputs}, h_last);
    input_grad=False skips x (one product of (T·B, H) by (H, D)) when nothing needs dL/dx.
    out: arrays, by gradient name (some of those grads has), that the core writes those
    gradients into, and returns as them, instead of new arrays: writable, C-contiguous, of the
    gradient's shape and the params' dtype, sharing memory with no argument and no other.
    check_finite=False skips the scan for NaN and infinity in every input array.
    memory_budget: the working memory (everything the call allocates beyond its arguments and
    the arrays it returns) at most, in bytes or as a string with a unit ("512MiB", "2 GB");
    under it the core keeps some hidden states and computes the others again, for results
    bitwise equal to the unbudgeted call's (`bptt.memory_plan` says what it does). None: every
    state kept when that fits in the memory available, else the plan that fits.
    compute_dtype: None (or the params' dtype name) for products in the params' dtype;
    "bfloat16" (float32 params) for products of bfloat16 operands accumulated in float32, the
    hidden states kept as bfloat16 (README "bfloat16 products"); results stay float32.
    """
    weights = _arguments.model_params(params)
    budget = parse_memory_budget(memory_budget)
    check_finite = _arguments.flag(check_finite, "check_finite")
    input_grad = _arguments.flag(input_grad, "input_grad")
    activation, reduction = _arguments.activation(activation), _arguments.reduction(reduction)
    options = (activation, reduction, check_finite, input_grad)
    inputs = _arguments.as_array(inputs, "inputs")
    if not _arguments.is_unbatched(inputs):
        return LossAndGrad(
            *_core.loss_and_grad(
                *weights, inputs, targets, h0, *options, out, budget, compute_dtype
            )
        )
    try:
        loss, grads, h_last = _core.loss_and_grad(
            *weights,
            inputs[:, None],
            _arguments.by_step(targets, "targets"),
            _arguments.state(h0, "h0"),
            *options,
            _batched_out(out, weights, inputs),
            budget,
            compute_dtype,
        )
    except ValueError as error:
        arrays = {"inputs": inputs, "targets": targets, "h0": h0}
        _arguments.restate_unbatched(error, len(inputs), weights[0], weights[3], arrays)
        raise
    grads["h0"] = out["h0"] if out and "h0" in out else grads["h0"][0]
    if "x" in grads:
        grads["x"] = out["x"] if out and "x" in out else grads["x"][:, 0]
    return LossAndGrad(loss, grads, h_last[0])


def _batched_out(out: object, weights: tuple[Any, ...], inputs: np.ndarray) -> object:
    """An unbatched call's out arrays for h0 (H,) and x (T, D) as the batched views the core
    writes, (1, H) and (T, 1, D), after checking their unbatched shapes (when the weights'
    own shapes are sound: the core reports theirs first); anything else is passed on for the
    core to check."""
    if not isinstance(out, Mapping):
        return out
    H, D = _arguments.matrix_shape(weights[0])
    expected = {"h0": ((("H", H),), 0), "x": ((("T", len(inputs)), ("D", D)), 1)}
    batched = dict(out)
    for name, (axes, batch_axis) in expected.items():
        array = out.get(name)
        if isinstance(array, np.ndarray):
            _arguments.check_shape(
                array.shape, f"out['{name}']", *axes, context=_arguments.UNBATCHED
            )
            batched[name] = np.expand_dims(array, batch_axis)
    return batched


def forward(
    params: Mapping[str, ArrayLike],
    inputs: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    check_finite: bool = True,
    compute_dtype: str | None = None,
) -> ForwardResult:
    """Hidden states h_t = σ(b + W h_{t-1} + U x_t) (T, B, H), logits o_t = c + V h_t (T, B, O)
    and the last state h_T (B, H), for the params, inputs, h0 and compute_dtype that
    loss_and_grad takes; unbatched inputs give unbatched results."""
    U, W, b, V, c = _arguments.model_params(params)
    check_finite = _arguments.flag(check_finite, "check_finite")
    activation = _arguments.activation(activation)
    inputs = _arguments.as_array(inputs, "inputs")
    unbatched = _arguments.is_unbatched(inputs)
    try:
        # states[0] is h0 and states[1:] the hidden states h_1..h_T, one buffer without copies.
        states = _core.layer_forward(
            U,
            W,
            b,
            inputs[:, None] if unbatched else inputs,
            _arguments.state(h0, "h0") if unbatched else h0,
            activation=activation,
            check_finite=check_finite,
            compute_dtype=compute_dtype,
        )
        hidden = states[1:]
        logits = _logits_of_states(V, c, hidden, check_finite, compute_dtype)
    except ValueError as error:
        if unbatched:
            _arguments.restate_unbatched(error, len(inputs), U, V, {"inputs": inputs, "h0": h0})
        raise
    # h_T copied out of hidden[-1]: a caller changing the hidden states in place (a mask, a
    # dropout) must not change the state it carries to the next call, as the oracle's does not.
    if unbatched:
        return ForwardResult(hidden[:, 0], logits[:, 0], states[-1, 0].copy())
    return ForwardResult(hidden, logits, states[-1].copy())


def _logits_of_states(
    V: Any, c: Any, hidden: np.ndarray, check_finite: bool, compute_dtype: str | None
) -> np.ndarray:
    """The head's logits over the layer's own states. The states are no argument of forward: when
    the head refuses them, the fault is V's (of another H or dtype than the layer's), named as
    loss_and_grad names it; or they overflowed from finite arguments, and are results, as
    loss_and_grad's loss is. Checked only once the core has refused: no cost otherwise."""
    try:
        return _core.head_logits(V, c, hidden, check_finite, compute_dtype)
    except (TypeError, ValueError) as error:
        refused = str(error)
        if not refused.startswith(("hidden: ", "params['c']: expected dtype")):
            raise  # about V itself (not an array, say): the core's words stand
        V_dtype, V_shape = np.asarray(V).dtype, np.shape(V)  # arrays: the core read them as such
        if refused.startswith(("hidden: expected dtype", "params['c']: expected dtype")) and (
            V_dtype.itemsize != hidden.dtype.itemsize
        ):
            raise TypeError(
                f"params['V']: expected dtype {hidden.dtype} like params['U'], got {V_dtype}"
            ) from None
        if refused.startswith("hidden: expected shape"):
            expected = (V_shape[0], hidden.shape[-1])
            raise ValueError(
                f"params['V']: expected shape (O, H) = {expected}, got {V_shape}"
            ) from None
        if not refused.startswith("hidden: expected finite"):
            raise
    return _core.head_logits(V, c, hidden, False, compute_dtype)


MAX_THREADS = 1024  # the core's bound: OpenMP can fail, uncatchably, to start many more


def set_num_threads(n: int) -> None:
    """Threads for the core's products (default: the OpenMP default, usually every core)."""
    _core.set_num_threads(_arguments.integer(n, "n", 1, MAX_THREADS))


def get_num_threads() -> int:
    """Threads the core's products use."""
    return _core.get_num_threads()


def build_info() -> dict[str, Any]:
    """The core as built and as it runs here: its instruction set and the others available,
    Eigen's version, the compiler, OpenMP, the threads, how products with bfloat16 operands run
    (bfloat16_products) and how threads share each step of a recurrence (step_shares)."""
    return _core.build_info()


def release_scratch() -> int:
    """Frees the scratch buffers the calling thread keeps for its next call (up to 64 MiB, so
    that repeated calls do not page them in again) and the kept memory of result arrays already
    freed (up to 64 MiB); returns how many bytes were freed."""
    return _core.release_scratch()
