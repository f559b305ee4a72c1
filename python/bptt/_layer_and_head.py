"""The model's two pieces as public functions of their own, over the core's: the recurrent layer
(layer_forward, and layer_backward from any upstream gradient) and the softmax head
(head_logits, head_loss_and_grad). Composed, they give loss_and_grad's loss and gradients (which
it computes in one call of the core, without a round trip through Python); apart, they build
other models: a layer under another loss, a head over other features, stacked or bidirectional
layers.

Each takes the whole params mapping and reads its own entries (U, W, b or V, c), so that the
same dict serves every piece; arrays and errors as loss_and_grad's."""

# ruff: noqa: RUF002

from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike, NDArray

from bptt import _arguments, _core
from bptt.results import HeadLossAndGrad, LayerForwardResult

FloatArray = NDArray[np.floating]


def layer_forward(
    params: Mapping[str, ArrayLike],
    inputs: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    lengths: ArrayLike | None = None,
    reverse: bool = False,
    check_finite: bool = True,
    compute_dtype: str | None = None,
) -> LayerForwardResult:
    """The recurrent layer, h_t = σ(b + W h_{t-1} + U x_t): the hidden states h_1 .. h_T
    (T, B, H), and h_last (B, H), the state after the last step run (h_0 when T == 0).

    params: a mapping holding U (H, D), W (H, H) and b (H,) (other entries, such as the head's
    V and c, are left alone). inputs: float (T, B, D) or integer token ids (T, B); h0: (B, H) or
    None (zeros). Unbatched (T, D) / (T,) inputs take an (H,) h0 and give (T, H) and (H,).
    lengths: None, or (B,) integers in [0, T] for a padded batch: sequence b has lengths[b] real
    steps, and at a padded step (t > lengths[b]) the state is the one that step reads, so that
    h_last holds each sequence's state after its last real step. reverse: run from t = T down
    to 1, h_t = σ(b + W h_{t+1} + U x_t), starting from h0 (a bidirectional RNN's second
    direction); hidden still holds h_1 .. h_T in time order, and h_last is h_1.
    check_finite=False skips the scan for NaN and infinity. compute_dtype as in loss_and_grad
    ("bfloat16": the states are bfloat16 values, held in float32).

    hidden is a view of the core's buffer of states, h_last a copy: changing one in place leaves
    the other alone."""
    U, W, b = _arguments.layer_params(params)
    activation = _arguments.activation(activation)
    reverse = _arguments.flag(reverse, "reverse")
    check_finite = _arguments.flag(check_finite, "check_finite")
    inputs = _arguments.as_array(inputs, "inputs")
    if not _arguments.is_unbatched(inputs):
        states = _core.layer_forward(
            U, W, b, inputs, h0, activation, lengths, reverse, check_finite, compute_dtype
        )
        return _hidden_and_last(states, reverse)
    _refuse_lengths(lengths, inputs)
    try:
        h0_batch = _arguments.state(h0, "h0")
        states = _core.layer_forward(
            U,
            W,
            b,
            inputs[:, None],
            h0_batch,
            activation,
            None,
            reverse,
            check_finite,
            compute_dtype,
        )
    except ValueError as error:
        _arguments.restate_unbatched(error, len(inputs), U, None, {"inputs": inputs, "h0": h0})
        raise
    return _hidden_and_last(states[:, 0], reverse)


def _hidden_and_last(states: np.ndarray, reverse: bool) -> LayerForwardResult:
    """hidden h_1 .. h_T, a view of the core's states (T + 1, ..., H): h0, h_1 .. h_T, or
    reversed h_1 .. h_T, h0; and h_last, a copy (changing one in place leaves the other
    alone)."""
    if reverse:
        return LayerForwardResult(states[:-1], states[0].copy())
    return LayerForwardResult(states[1:], states[-1].copy())


def layer_backward(
    params: Mapping[str, ArrayLike],
    inputs: ArrayLike,
    hidden: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    d_hidden: ArrayLike | None = None,
    d_h_last: ArrayLike | None = None,
    activation: str = "tanh",
    lengths: ArrayLike | None = None,
    reverse: bool = False,
    check_finite: bool = True,
    input_grad: bool = True,
    compute_dtype: str | None = None,
) -> dict[str, FloatArray]:
    """BPTT through the recurrent layer from upstream gradients: the gradients U, W, b, h0, and x
    for float inputs (unless input_grad=False), by name, as LossAndGrad.grads holds them.

    hidden: layer_forward's hidden states (T, B, H) for the same params, inputs, h0, activation,
    lengths and reverse (σ'(a_t) is read from them, without running the layer again).
    d_hidden: dL/dh_t (T, B, H) from whatever uses every hidden state (ignored at padded steps);
    d_h_last: dL/dh_last (B, H) from whatever uses the last state; None means zeros. Unbatched
    (T, D) / (T,) inputs take (T, H) hidden and d_hidden and (H,) h0 and d_h_last, and give h0's
    gradient (H,) and x's (T, D). Other arguments as in layer_forward."""
    U, W, b = _arguments.layer_params(params)
    activation = _arguments.activation(activation)
    options = (
        activation,
        lengths,
        _arguments.flag(reverse, "reverse"),
        _arguments.flag(check_finite, "check_finite"),
        _arguments.flag(input_grad, "input_grad"),
        compute_dtype,
    )
    inputs = _arguments.as_array(inputs, "inputs")
    if not _arguments.is_unbatched(inputs):
        return _core.layer_backward(U, W, b, inputs, hidden, h0, d_hidden, d_h_last, *options)
    _refuse_lengths(lengths, inputs)
    try:
        grads = _core.layer_backward(
            U,
            W,
            b,
            inputs[:, None],
            _arguments.by_step(hidden, "hidden"),
            _arguments.state(h0, "h0"),
            None if d_hidden is None else _arguments.by_step(d_hidden, "d_hidden"),
            _arguments.state(d_h_last, "d_h_last"),
            *options,
        )
    except ValueError as error:
        arrays = {
            "inputs": inputs,
            "hidden": hidden,
            "d_hidden": d_hidden,
            "h0": h0,
            "d_h_last": d_h_last,
        }
        _arguments.restate_unbatched(error, len(inputs), U, None, arrays)
        raise
    grads["h0"] = grads["h0"][0]
    if "x" in grads:
        grads["x"] = grads["x"][:, 0]
    return grads


def head_logits(
    params: Mapping[str, ArrayLike],
    hidden: ArrayLike,
    *,
    check_finite: bool = True,
    compute_dtype: str | None = None,
) -> FloatArray:
    """The softmax head's logits o_t = c + V h_t (T, B, O) for hidden states (T, B, H); (T, O) for
    unbatched (T, H). params: a mapping holding V (O, H) and c (O,) (other entries, such as the
    layer's U, W and b, are left alone)."""
    V, c = _arguments.head_params(params)
    check_finite = _arguments.flag(check_finite, "check_finite")
    hidden = _arguments.as_array(hidden, "hidden")
    if hidden.ndim != 2:
        return _core.head_logits(V, c, hidden, check_finite, compute_dtype)
    try:
        return _core.head_logits(V, c, hidden[:, None], check_finite, compute_dtype)[:, 0]
    except ValueError as error:
        _arguments.restate_unbatched(error, len(hidden), None, V, {"hidden": hidden})
        raise


def head_loss_and_grad(
    params: Mapping[str, ArrayLike],
    hidden: ArrayLike,
    targets: ArrayLike,
    *,
    reduction: str = "sum",
    check_finite: bool = True,
    compute_dtype: str | None = None,
) -> HeadLossAndGrad:
    """The softmax head's loss L = -Σ_t y_t · log softmax(c + V h_t) over hidden states (T, B, H),
    and its gradients: grads {V, c} and d_hidden = dL/dh_t (T, B, H), the upstream gradient for
    layer_backward.

    params as in head_logits; targets and reduction as in loss_and_grad: class ids (T, B), -1
    meaning no loss at that step, or float soft targets (T, B, O); "sum", or "mean" over the
    counted targets. Unbatched (T, H) hidden states take (T,) / (T, O) targets and give a (T, H)
    d_hidden."""
    V, c = _arguments.head_params(params)
    reduction = _arguments.reduction(reduction)
    check_finite = _arguments.flag(check_finite, "check_finite")
    hidden = _arguments.as_array(hidden, "hidden")
    if hidden.ndim != 2:
        return HeadLossAndGrad(
            *_core.head_loss_and_grad(V, c, hidden, targets, reduction, check_finite, compute_dtype)
        )
    try:
        loss, grads, d_hidden = _core.head_loss_and_grad(
            V,
            c,
            hidden[:, None],
            _arguments.by_step(targets, "targets"),
            reduction,
            check_finite,
            compute_dtype,
        )
    except ValueError as error:
        arrays = {"hidden": hidden, "targets": targets}
        _arguments.restate_unbatched(error, len(hidden), None, V, arrays)
        raise
    return HeadLossAndGrad(loss, grads, d_hidden[:, 0])


def _refuse_lengths(lengths: object, inputs: np.ndarray) -> None:
    if lengths is not None:
        raise ValueError(
            "lengths: per-sequence lengths need a batch, inputs (T, B, D) or token ids (T, B); "
            f"got unbatched inputs of shape {inputs.shape} (for one sequence, leave lengths None)"
        )
