"""A stack of Elman layers under one softmax head, over the public layer ops: layer 1 reads the
characters, layer k the hidden states of layer k - 1, the head the last layer's,

    h_t^(k) = σ(b^(k) + W^(k) h_{t-1}^(k) + U^(k) h_t^(k-1))     o_t = c + V h_t^(L),

and BPTT runs back through the head, then down the stack, each layer's input gradient the
upstream gradient of the layer below. Layer 1's parameters are the one-layer model's U, W, b;
layer k's are named U{k}, W{k}, b{k} (U2, W2, b2, ...); one state (B, H) per layer, stacked
(L, B, H)."""

# ruff: noqa: RUF002, RUF003  (σ is the model's symbol for the activation)

import math
import numbers
from collections.abc import Mapping
from typing import Any

import numpy as np

from bptt import _api, _layer_and_head, _model, _params
from bptt.results import LossAndGrad

LAYER_NAMES = _model.PARAM_NAMES[:3]  # U, W, b
# the recurrent weights W: torch.nn.RNN's uniform draw, or a random orthogonal matrix (every
# singular value 1: h_{t-1}'s signal neither grows nor fades through W at the start)
INITS = ("uniform", "orthogonal")
HEAD_NAMES = _model.PARAM_NAMES[3:]  # V, c


def layer_names(layer: int) -> tuple[str, ...]:
    """The names of layer `layer`'s (1-based) U, W, b."""
    return LAYER_NAMES if layer == 1 else tuple(f"{name}{layer}" for name in LAYER_NAMES)


def layer_count(params: Mapping) -> int:
    """How many layers the params hold: 1, then one more for each U{k} present; ValueError
    naming the first parameter of those layers or the head that is missing."""
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params: expected a mapping of arrays by name, got {type(params).__name__}"
        )
    layers = 1
    while f"U{layers + 1}" in params:
        layers += 1
    for name in param_names(layers):
        if name not in params:
            raise ValueError(f"params: expected {name} among a {layers}-layer stack's, got none")
    return layers


def param_names(layers: int) -> tuple[str, ...]:
    """Every parameter's name, layer by layer, then the head's: U W b, U2 W2 b2, ..., V c."""
    return (*(name for k in range(1, layers + 1) for name in layer_names(k)), *HEAD_NAMES)


def parameter_shapes(
    input_size: int, hidden_size: int, output_size: int, layers: int
) -> dict[str, tuple[int, ...]]:
    """Every parameter's shape, layer by layer, then the head's: U W b, U2 W2 b2, ..., V c."""
    one_layer = _model.parameter_shapes(input_size, hidden_size, output_size)
    shapes = {name: one_layer[name] for name in LAYER_NAMES}
    upper = _model.parameter_shapes(hidden_size, hidden_size, output_size)  # U (H, H)
    for layer in range(2, layers + 1):
        shapes.update(zip(layer_names(layer), (upper[name] for name in LAYER_NAMES), strict=True))
    return shapes | {name: one_layer[name] for name in HEAD_NAMES}


def parameter_count(input_size: int, hidden_size: int, output_size: int, layers: int) -> int:
    """How many scalars parameter_shapes' parameters hold, counted without listing them: a run
    asking for more layers than memory holds is refused at once, not after building the list."""
    one_layer = _model.parameter_shapes(input_size, hidden_size, output_size)
    upper = _model.parameter_shapes(hidden_size, hidden_size, output_size)

    def scalars(shapes: Mapping[str, tuple[int, ...]], names: tuple[str, ...]) -> int:
        return sum(math.prod(shapes[name]) for name in names)

    return scalars(one_layer, LAYER_NAMES + HEAD_NAMES) + (layers - 1) * scalars(upper, LAYER_NAMES)


def init_params(
    input_size: int,
    hidden_size: int,
    output_size: int,
    layers: int,
    *,
    dtype,
    seed: int | None,
    init: str = "uniform",
) -> dict[str, np.ndarray]:
    """Layer 1 and the head as `bptt.init_params` draws them from `seed` (a one-layer run's
    weights), and each layer k above it uniform in ±1/sqrt(H) as torch.nn.RNN's, from its own
    generator seeded (seed, k); for init "orthogonal", every W then replaced by an orthogonal
    matrix from the generator seeded (seed, k, 0)."""
    if isinstance(layers, bool) or not isinstance(layers, numbers.Integral) or layers < 1:
        raise ValueError(f"layers: expected an integer >= 1, got {layers!r}")
    if seed is None:  # a fresh seed, as bptt.init_params draws without one
        seed = int(np.random.SeedSequence().entropy)
    first = _params.init_params(input_size, hidden_size, output_size, dtype=dtype, seed=seed)
    params = {name: first[name] for name in LAYER_NAMES}
    bound = 1.0 / math.sqrt(hidden_size)
    shapes = parameter_shapes(input_size, hidden_size, output_size, layers)
    for layer in range(2, layers + 1):
        rng = np.random.default_rng((seed, layer))
        for name in layer_names(layer):
            params[name] = rng.uniform(-bound, bound, shapes[name]).astype(dtype)
    if init == "orthogonal":
        for layer in range(1, layers + 1):
            gaussian = np.random.default_rng((seed, layer, 0)).standard_normal((hidden_size,) * 2)
            q, r = np.linalg.qr(gaussian)
            # signs fixed by R's diagonal: Q uniform over the orthogonal matrices (Mezzadri)
            params[layer_names(layer)[1]] = (q * np.sign(np.diag(r))).astype(dtype)
    elif init != "uniform":
        raise ValueError(f"init: expected one of {', '.join(INITS)}, got {init!r}")
    return params | {name: first[name] for name in HEAD_NAMES}


def _layer(params: Mapping, layer: int) -> dict:
    """Layer `layer`'s parameters under the names the layer ops read: U, W, b."""
    return dict(zip(LAYER_NAMES, (params[name] for name in layer_names(layer)), strict=True))


def forward(
    params: Mapping, inputs: np.ndarray, *, h0: np.ndarray | None = None, activation: str = "tanh"
) -> tuple[np.ndarray, np.ndarray]:
    """The logits (T, B, O) of token ids (T, B) and every layer's last state (L, B, H); h0:
    (L, B, H), or None for zeros. Unbatched (T,) ids take (L, H) states. One layer is
    `bptt.forward`."""
    layers = layer_count(params)
    _check_states(h0, layers)
    if layers == 1:
        whole = _api.forward(
            params, inputs, h0=None if h0 is None else h0[0], activation=activation
        )
        return whole.logits, whole.h_last[None]
    below, last_states = inputs, []
    for layer in range(1, layers + 1):
        state = None if h0 is None else h0[layer - 1]
        result = _layer_and_head.layer_forward(
            _layer(params, layer), below, h0=state, activation=activation
        )
        below = result.hidden
        last_states.append(result.h_last)
    return _layer_and_head.head_logits(params, below), np.stack(last_states)


def loss_and_grad(
    params: Mapping,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    h0: np.ndarray,
    activation: str = "tanh",
    reduction: str = "mean",
    out: Mapping[str, np.ndarray],
    compute_dtype: str | None = None,
) -> LossAndGrad:
    """The loss of token ids (T, B) and their targets, every parameter's gradient written into
    `out` (arrays by parameter name, returned as grads), and every layer's last state (L, B, H);
    h0 (L, B, H); compute_dtype as in the layer ops. No checks for NaN and infinity inside: the
    caller judges the loss and the gradient's norm."""
    layers = layer_count(params)
    _check_states(h0, layers, required=True)
    _check_out(out, params, layers, (inputs, targets, h0))
    below, hidden, last_states = [inputs], [], []
    for layer in range(1, layers + 1):
        result = _layer_and_head.layer_forward(
            _layer(params, layer),
            below[-1],
            h0=h0[layer - 1],
            activation=activation,
            check_finite=False,
            compute_dtype=compute_dtype,
        )
        hidden.append(result.hidden)
        below.append(result.hidden)
        last_states.append(result.h_last)
    head = _layer_and_head.head_loss_and_grad(
        params,
        hidden[-1],
        targets,
        reduction=reduction,
        check_finite=False,
        compute_dtype=compute_dtype,
    )
    for name in HEAD_NAMES:
        np.copyto(out[name], head.grads[name])
    # dL/dh_t^(k), from above: the head, then layer k + 1
    d_hidden: np.ndarray | None = head.d_hidden
    for layer in range(layers, 0, -1):
        grads = _layer_and_head.layer_backward(
            _layer(params, layer),
            below[layer - 1],
            hidden[layer - 1],
            h0=h0[layer - 1],
            d_hidden=d_hidden,
            activation=activation,
            check_finite=False,
            input_grad=layer > 1,
            compute_dtype=compute_dtype,
        )
        for name, own_name in zip(LAYER_NAMES, layer_names(layer), strict=True):
            np.copyto(out[own_name], grads[name])
        d_hidden = grads.get("x")  # dL/dh_t^(k-1) = U^(k)ᵀ da_t^(k)
    return LossAndGrad(head.loss, dict(out), np.stack(last_states))


def _check_states(h0: Any, layers: int, *, required: bool = False) -> None:
    """h0 holds a state per layer, (L, B, H) or (L, H) unbatched; the layer ops check the rest,
    naming h0."""
    if h0 is None and not required:
        return
    shape = np.shape(h0) if h0 is not None else None
    if shape is None or len(shape) not in (2, 3) or shape[0] != layers:
        raise ValueError(
            f"h0: expected every layer's state, (L, B, H) or (L, H) with L = {layers}, got "
            + ("None" if shape is None else f"shape {shape}")
        )


def _check_out(out: object, params: Mapping, layers: int, arguments: tuple) -> None:
    """out holds, for every parameter, a writable array of its shape and dtype, sharing no
    memory with a parameter, an argument (its gradient would overwrite what the call reads) or
    another of out's arrays (one gradient would overwrite another)."""
    if not isinstance(out, Mapping):
        raise TypeError(f"out: expected a mapping of arrays by name, got {type(out).__name__}")
    dtype = np.asarray(params["U"]).dtype
    read = [(f"params[{name!r}]", params[name]) for name in param_names(layers)]
    read += [("inputs", arguments[0]), ("targets", arguments[1]), ("h0", arguments[2])]
    for name in param_names(layers):
        if name not in out:
            raise ValueError(f"out: expected an array for every parameter, got none for {name!r}")
        array, where = out[name], f"out[{name!r}]"
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{where}: expected an array, got {type(array).__name__}")
        shape = np.shape(params[name])
        if array.shape != shape or array.dtype != dtype or not array.flags.writeable:
            raise ValueError(
                f"{where}: expected a writable {dtype} array of shape {shape}, got "
                f"{'a read-only ' if not array.flags.writeable else ''}{array.dtype} array of "
                f"shape {array.shape}"
            )
        for other, value in read:
            if isinstance(value, np.ndarray) and np.may_share_memory(array, value):
                raise ValueError(
                    f"{where}: expected an array of its own, got one sharing memory with {other}"
                )
        read.append((where, array))
