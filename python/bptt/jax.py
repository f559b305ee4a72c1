"""bptt as a gradient backend for JAX (needs the `jax` extra).

- `loss(params, inputs, targets)`: the note's loss, a scalar, L = -Σ_t y_t · log softmax(o_t).
- `rnn(params, inputs)`: the recurrent layer alone, h_t = σ(b + W h_{t-1} + U x_t): the hidden
  states (T, B, H) and the last state h_T (B, H).

Both are jax.custom_vjp functions whose forward and backward run bptt's core on the host through
jax.pure_callback: they work under jax.jit, jax.grad and jax.value_and_grad (and jax.vmap, one
core call per example), and their gradients are those of the same model written with lax.scan.
The core skips its NaN scan here (check_finite=False): non-finite values propagate, as through
JAX's own operations. Arrays are float32, or float64 with jax_enable_x64.
"""

# ruff: noqa: RUF002

# Python 3 imports are absolute: `import jax` below is the real JAX, not this module.
from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

from bptt import _core
from bptt._api import _unpack

__all__ = ["loss", "rnn"]


def loss(params, inputs, targets, *, h0=None, activation: str = "tanh", reduction: str = "sum"):
    """bptt.loss_and_grad's loss as a differentiable JAX scalar.

    params: {U (H, D), W (H, H), b (H,), V (O, H), c (O,)}; inputs: float (T, B, D) or integer
    token ids (T, B); targets: class ids (T, B), -1 meaning no loss at that step, or soft targets
    (T, B, O); h0: (B, H) or None (zeros). Gradients reach the params, float inputs and h0."""
    U, W, b, V, c = _unpack(params)
    h0 = _initial_state(h0, inputs, U)
    return _loss(activation, reduction, (U, W, b, V, c), inputs, targets, h0)


def rnn(params, inputs, *, h0=None, activation: str = "tanh", reverse: bool = False):
    """The recurrent layer: hidden states (T, B, H) and the last state (B, H).

    params: a mapping holding U (H, D), W (H, H) and b (H,) (any other entries, such as the
    head's V and c, are left alone); inputs: float (T, B, D) or integer token ids (T, B); h0: (B,
    H) or None (zeros); reverse: run from t = T - 1 down to 0 (the last state is then h_0's)."""
    if not isinstance(params, Mapping) or any(name not in params for name in "UWb"):
        raise ValueError("params: expected a mapping holding U, W and b")
    layer = (params["U"], params["W"], params["b"])
    h0 = _initial_state(h0, inputs, layer[0])
    return _rnn(activation, reverse, layer, inputs, h0)


def _initial_state(h0, inputs, U):
    """h0, or zeros (B, H); the inputs must have a batch axis."""
    float_inputs = jnp.issubdtype(jnp.result_type(inputs), jnp.floating)
    if jnp.ndim(inputs) != (3 if float_inputs else 2):
        raise ValueError(
            "inputs: expected float (T, B, D) or token ids (T, B), got shape "
            f"{jnp.shape(inputs)} (for one sequence, add a batch axis of 1)"
        )
    if h0 is not None:
        return h0
    return jnp.zeros((jnp.shape(inputs)[1], jnp.shape(U)[0]), jnp.result_type(U))


def _shape_of(array):
    return jax.ShapeDtypeStruct(jnp.shape(array), jnp.result_type(array))


def _scalar_like(U):
    return jax.ShapeDtypeStruct((), jnp.result_type(U))


def _callback(host_function, result_shapes, *args):
    # sequential: under vmap, one host call per example
    return jax.pure_callback(host_function, result_shapes, *args, vmap_method="sequential")


# ---------------------------------------------------------------------------------------------
# The loss: forward is one core call computing the loss and every gradient; backward scales them.


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _loss(activation, reduction, layer_and_head, inputs, targets, h0):
    U = layer_and_head[0]

    def host_loss(U, W, b, V, c, inputs, targets, h0):
        states = _core.layer_forward(U, W, b, inputs, h0, activation=activation, check_finite=False)
        value, _, _ = _core.head_loss_and_grad(V, c, states[1:], targets, reduction, False)
        return np.asarray(value, U.dtype)

    return _callback(host_loss, _scalar_like(U), *layer_and_head, inputs, targets, h0)


def _loss_forward(activation, reduction, layer_and_head, inputs, targets, h0):
    U = layer_and_head[0]
    float_inputs = jnp.issubdtype(jnp.result_type(inputs), jnp.floating)

    def host_loss_and_grad(U, W, b, V, c, inputs, targets, h0):
        value, grads, _ = _core.loss_and_grad(
            U, W, b, V, c, inputs, targets, h0, activation, reduction, False
        )
        names = ["U", "W", "b", "V", "c", "h0"] + (["x"] if float_inputs else [])
        return np.asarray(value, U.dtype), tuple(grads[name] for name in names)

    grad_shapes = tuple(_shape_of(array) for array in (*layer_and_head, h0))
    grad_shapes += (_shape_of(inputs),) if float_inputs else ()
    value, grads = _callback(
        host_loss_and_grad,
        (_scalar_like(U), grad_shapes),
        *layer_and_head,
        inputs,
        targets,
        h0,
    )
    return value, grads


def _loss_backward(activation, reduction, grads, d_loss):
    scaled = tuple(d_loss * grad for grad in grads)
    d_layer_and_head, d_h0 = scaled[:5], scaled[5]
    d_inputs = scaled[6] if len(scaled) > 6 else None
    return d_layer_and_head, d_inputs, None, d_h0  # no gradient for the targets


_loss.defvjp(_loss_forward, _loss_backward)


# ---------------------------------------------------------------------------------------------
# The layer: forward keeps the hidden states, backward runs BPTT from their upstream gradients.


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _rnn(activation, reverse, layer, inputs, h0):
    outputs, _ = _rnn_forward(activation, reverse, layer, inputs, h0)
    return outputs


def _rnn_forward(activation, reverse, layer, inputs, h0):
    U = layer[0]
    (T, B), H, dtype = jnp.shape(inputs)[:2], jnp.shape(U)[0], jnp.result_type(U)
    hidden_shape = jax.ShapeDtypeStruct((T, B, H), dtype)
    state_shape = jax.ShapeDtypeStruct((B, H), dtype)

    def host_layer_forward(U, W, b, inputs, h0):
        states = _core.layer_forward(
            U, W, b, inputs, h0, activation=activation, reverse=reverse, check_finite=False
        )
        return (states[:-1], states[0]) if reverse else (states[1:], states[-1])

    hidden, h_last = _callback(host_layer_forward, (hidden_shape, state_shape), *layer, inputs, h0)
    return (hidden, h_last), (layer, inputs, h0, hidden)


def _rnn_backward(activation, reverse, residuals, cotangents):
    layer, inputs, h0, hidden = residuals
    d_hidden, d_h_last = cotangents
    float_inputs = jnp.issubdtype(jnp.result_type(inputs), jnp.floating)

    def host_layer_backward(U, W, b, inputs, h0, hidden, d_hidden, d_h_last):
        grads = _core.layer_backward(
            U,
            W,
            b,
            inputs,
            hidden,
            h0=h0,
            d_hidden=d_hidden,
            d_h_last=d_h_last,
            activation=activation,
            reverse=reverse,
            check_finite=False,
        )
        names = ["U", "W", "b", "h0"] + (["x"] if float_inputs else [])
        return tuple(grads[name] for name in names)

    grad_shapes = tuple(_shape_of(array) for array in (*layer, h0))
    grad_shapes += (_shape_of(inputs),) if float_inputs else ()
    grads = _callback(
        host_layer_backward, grad_shapes, *layer, inputs, h0, hidden, d_hidden, d_h_last
    )
    return grads[:3], (grads[4] if float_inputs else None), grads[3]


_rnn.defvjp(_rnn_forward, _rnn_backward)
