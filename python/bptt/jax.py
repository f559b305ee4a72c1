"""bptt as a gradient backend for JAX (needs the `jax` extra).

- `loss(params, inputs, targets)`: the model's loss, a scalar, L = -Σ_t y_t · log softmax(o_t).
- `rnn(params, inputs)`: the recurrent layer alone, h_t = σ(b + W h_{t-1} + U x_t): the hidden
  states (T, B, H) and the last state h_T (B, H).

Both are jax.custom_vjp functions whose forward and backward run bptt's core on the host through
jax.pure_callback: they work under jax.jit, jax.grad and jax.value_and_grad (and jax.vmap, one
core call per example), and their gradients are those of the same model written with lax.scan.
The core skips its NaN scan here (check_finite=False): non-finite values propagate, as through
JAX's own operations. Arrays are float32, or float64 with jax_enable_x64.

Wrong shapes, dtypes and options (a memory budget too small for the problem among them) raise
TypeError or ValueError naming the argument when traced.
Integer ids in a NumPy array of a type wider than JAX computes in (int64 without jax_enable_x64)
that JAX's type cannot hold raise ValueError at once: JAX would wrap them silently.
Other ids out of range can only be seen when the core runs: they raise jax.errors.JaxRuntimeError, its
message the host's traceback ending in the core's ValueError ("targets: id 6 at (t=0, b=0) is out
of range: ...").
"""

# ruff: noqa: RUF002

# Python 3 imports are absolute: `import jax` below is the real JAX, not this module.
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from bptt import _arguments, _core, memory
from bptt.memory_budget import memory_plan, minimum_budget, parse_memory_budget

__all__ = ["loss", "rnn"]


def loss(
    params: Mapping[str, ArrayLike],
    inputs: ArrayLike,
    targets: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    memory_budget: int | str | None = None,
    compute_dtype: str | None = None,
) -> jax.Array:
    """bptt.loss_and_grad's loss as a differentiable JAX scalar.

    params: {U (H, D), W (H, H), b (H,), V (O, H), c (O,)}; inputs: float (T, B, D) or integer
    token ids (T, B); targets: class ids (T, B), -1 meaning no loss at that step, or soft targets
    (T, B, O); h0: (B, H) or None (zeros). Gradients reach the params, float inputs and h0;
    soft targets get none, and differentiating with respect to them raises ValueError
    (jax.lax.stop_gradient(targets) makes them constants).
    memory_budget: the working memory of each core call at most, as bptt.loss_and_grad takes it
    (bytes, or a string such as "512MiB"), for the same value and gradients, bit for bit, as
    bptt.loss_and_grad's; the loss alone, without a gradient, then runs loss_and_grad too (the
    forward pass alone would keep every state). compute_dtype: as bptt.loss_and_grad takes it
    ("bfloat16": bfloat16 product operands, float32 accumulation, float32 params)."""
    U, W, b, V, c = _arguments.model_params(params)
    steps, batch = _check_layer_arguments((U, W, b), inputs, h0, activation)
    output_size = _check_head(V, c, U)
    _check_targets(targets, steps, batch, output_size, jnp.result_type(U))
    _check_ids_fit(inputs, "inputs")
    _check_ids_fit(targets, "targets")
    _arguments.reduction(reduction)
    compute_dtype = _arguments.compute_dtype(compute_dtype, jnp.result_type(U))
    budget = parse_memory_budget(memory_budget)
    if budget is not None:
        _check_memory_budget(budget, (U, V), inputs, targets, compute_dtype)
    h0 = _initial_state(h0, batch, U)
    options = (activation, reduction, budget, compute_dtype)
    return _loss(options, (U, W, b, V, c), inputs, targets, h0)


def rnn(
    params: Mapping[str, ArrayLike],
    inputs: ArrayLike,
    *,
    h0: ArrayLike | None = None,
    activation: str = "tanh",
    reverse: bool = False,
    compute_dtype: str | None = None,
) -> tuple[jax.Array, jax.Array]:
    """The recurrent layer: hidden states (T, B, H) and the last state (B, H).

    params: a mapping holding U (H, D), W (H, H) and b (H,) (any other entries, such as the
    head's V and c, are left alone); inputs: float (T, B, D) or integer token ids (T, B); h0: (B,
    H) or None (zeros); reverse: run from the last step down to the first, as
    bptt.layer_forward(reverse=True) does (the last state is then the first step's,
    hidden[0]); compute_dtype as in loss."""
    layer = _arguments.layer_params(params)
    steps, batch = _check_layer_arguments(layer, inputs, h0, activation)
    _check_ids_fit(inputs, "inputs")
    # JAX allocates the states before the callback runs, and without jax.jit a failure to
    # allocate them waits for ever: too many are refused here, as bptt.layer_forward does.
    hidden_size = jnp.shape(layer[0])[0]
    states_bytes = (steps + 1) * batch * hidden_size * jnp.result_type(layer[0]).itemsize
    memory.check_available(
        states_bytes, f"rnn with hidden states ({steps}, {batch}, {hidden_size})", MemoryError
    )
    reverse = _arguments.flag(reverse, "reverse")
    compute_dtype = _arguments.compute_dtype(compute_dtype, jnp.result_type(layer[0]))
    h0 = _initial_state(h0, batch, layer[0])
    return _rnn((activation, reverse, compute_dtype), layer, inputs, h0)


def _initial_state(h0: ArrayLike | None, batch: int, U: ArrayLike) -> ArrayLike:
    """h0, or zeros (B, H)."""
    if h0 is not None:
        return h0
    return jnp.zeros((batch, jnp.shape(U)[0]), jnp.result_type(U))


# ---------------------------------------------------------------------------------------------
# Checks at trace time, where shapes and dtypes are known, in the core's words: the core's own
# errors, raised inside the callback, would reach the caller as a JaxRuntimeError.


def _check_layer_arguments(
    layer: tuple[Any, Any, Any], inputs: Any, h0: Any, activation: str
) -> tuple[int, int]:
    """U (H, D), W (H, H), b (H,), float32 or float64 alike; inputs, h0 and the activation to
    match. Returns (T, B)."""
    U, W, b = layer
    dtype = _dtype(U, "params['U']")
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"params['U']: expected dtype float32 or float64, got {dtype}")
    if jnp.ndim(U) != 2 or min(jnp.shape(U)) < 1:
        raise ValueError(
            f"params['U']: expected a 2-d array of shape (H, D) with H, D >= 1, got {jnp.shape(U)}"
        )
    hidden_size, input_size = jnp.shape(U)
    like = "like params['U']"
    _check_float(W, "params['W']", dtype, like, ("H", hidden_size), ("H", hidden_size))
    _check_float(b, "params['b']", dtype, like, ("H", hidden_size))
    input_dtype = _dtype(inputs, "inputs")
    if not (_is_float(input_dtype) or _is_integer(input_dtype)):
        raise TypeError(
            f"inputs: expected {dtype} vectors or integer token ids, got dtype {input_dtype}"
        )
    if jnp.ndim(inputs) != (3 if _is_float(input_dtype) else 2):
        raise ValueError(
            "inputs: expected float (T, B, D) or token ids (T, B), got shape "
            f"{jnp.shape(inputs)} (for one sequence, add a batch axis of 1)"
        )
    if _is_float(input_dtype):
        like = "like the params (or integer token ids)"
        _check_float(inputs, "inputs", dtype, like, ("T", None), ("B", None), ("D", input_size))
    steps, batch = jnp.shape(inputs)[:2]
    if h0 is not None:
        _check_float(h0, "h0", dtype, "like the params", ("B", batch), ("H", hidden_size))
    _arguments.activation(activation)
    return steps, batch


def _check_head(V: Any, c: Any, U: Any) -> int:
    """V (O, H) and c (O,) of U's dtype; returns O."""
    dtype, hidden_size, like = jnp.result_type(U), jnp.shape(U)[0], "like params['U']"
    _check_dtype(V, "params['V']", dtype, like)
    if jnp.ndim(V) != 2 or jnp.shape(V)[0] < 1:
        raise ValueError(
            f"params['V']: expected a 2-d array of shape (O, H) with O >= 1, got {jnp.shape(V)}"
        )
    output_size = jnp.shape(V)[0]
    _check_shape(V, "params['V']", ("O", output_size), ("H", hidden_size))
    _check_float(c, "params['c']", dtype, like, ("O", output_size))
    return output_size


def _check_targets(targets: Any, steps: int, batch: int, output_size: int, dtype: Any) -> None:
    """Integer class ids (T, B) or float soft targets (T, B, O) of the params' dtype."""
    targets_dtype = _dtype(targets, "targets")
    if _is_integer(targets_dtype):
        _check_shape(targets, "targets", ("T", steps), ("B", batch))
    elif _is_float(targets_dtype):
        like = "like the params (or integer class ids)"
        axes = (("T", steps), ("B", batch), ("O", output_size))
        _check_float(targets, "targets", dtype, like, *axes)
    else:
        raise TypeError(
            "targets: expected integer class ids (T, B) or float soft targets (T, B, O), got "
            f"dtype {targets_dtype}"
        )


def _check_ids_fit(ids: Any, name: str) -> None:
    """Integer ids held on the host in a type wider than JAX computes in (int64 without
    jax_enable_x64), which JAX would wrap silently, fit that type. Ids already in JAX were
    converted by the caller."""
    if isinstance(ids, jax.Array) or not isinstance(ids, np.ndarray) or not _is_integer(ids.dtype):
        return
    narrow = jax.dtypes.canonicalize_dtype(ids.dtype)
    if narrow == ids.dtype:
        return
    limits = np.iinfo(narrow)
    outside = np.flatnonzero((ids < limits.min) | (ids > limits.max))
    if outside.size:
        t, b = np.unravel_index(outside[0], ids.shape)
        raise ValueError(
            f"{name}: id {ids[t, b]} at (t={t}, b={b}) is out of range: expected an id that "
            f"JAX's {narrow} holds (jax_enable_x64 is off)"
        )


def _check_memory_budget(
    budget: int, weights: tuple[Any, Any], inputs: Any, targets: Any, compute_dtype: str | None
) -> None:
    """ValueError unless the core's call fits in `budget`: its plan's need, and the copies it
    makes of ids that are not int64 (JAX's default int32), as the core counts them."""
    (H, D), O = jnp.shape(weights[0]), jnp.shape(weights[1])[0]
    T, B = jnp.shape(inputs)[:2]
    id_types = [jnp.result_type(array) for array in (inputs, targets)]
    copy_bytes = np.dtype(np.int64).itemsize * T * B
    copies = sum(copy_bytes for kind in id_types if _is_integer(kind) and kind != np.int64)
    sizes = (T, B, D, H, O)
    options = {
        "dtype": jnp.result_type(weights[0]).name,
        "tokens": jnp.ndim(inputs) == 2,
        "compute_dtype": compute_dtype,
    }
    if budget > copies:
        try:
            memory_plan(*sizes, **options, memory_budget=budget - copies)
            return
        except ValueError:
            pass
    minimum = minimum_budget(*sizes, **options) + copies
    raise ValueError(
        f"memory_budget: expected at least {minimum} bytes (the smallest schedule's need for "
        f"this problem, and the arguments' copies), got {budget}"
    )


def _dtype(array: Any, name: str) -> np.dtype:
    """The dtype JAX computes in (float64 is float32 without jax_enable_x64)."""
    if not hasattr(array, "shape") or not hasattr(array, "dtype"):
        raise TypeError(f"{name}: expected an array, got {type(array).__name__}")
    try:
        return jnp.result_type(array)
    except TypeError:
        # one JAX has no type for (object, strings), for each check to refuse by name
        return np.dtype(array.dtype)


def _is_float(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.floating)


def _is_integer(dtype: Any) -> bool:
    return jnp.issubdtype(dtype, jnp.integer)


def _check_dtype(array: Any, name: str, dtype: Any, like: str) -> None:
    got = _dtype(array, name)
    if got != dtype:
        raise TypeError(f"{name}: expected dtype {dtype} {like}, got {got}")


def _check_float(
    array: Any, name: str, dtype: Any, like: str, *axes: tuple[str, int | None]
) -> None:
    """An array of `dtype` and of the shape `axes` describes (see _check_shape)."""
    _check_dtype(array, name, dtype, like)
    _check_shape(array, name, *axes)


def _check_shape(array: Any, name: str, *axes: tuple[str, int | None]) -> None:
    _arguments.check_shape(jnp.shape(array), name, *axes)


def _shape_of(array: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(jnp.shape(array), jnp.result_type(array))


def _scalar_like(U: Any) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((), jnp.result_type(U))


def _host_arrays(arrays: tuple[Any, ...]) -> tuple[np.ndarray, ...]:
    """The callback's arrays as NumPy arrays over the same memory: the core counts any other
    object's conversion as a copy within a memory budget."""
    return tuple(np.asarray(array) for array in arrays)


# A host call with no derivative of its own: JAX reaches for one only to differentiate bptt's
# gradients again (jax.hessian, a grad of a grad), which the core does not compute.
@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1))
def _callback(host_function: Callable[..., Any], result_shapes: Any, *args: Any) -> Any:
    # sequential: under vmap, one host call per example
    return jax.pure_callback(host_function, result_shapes, *args, vmap_method="sequential")


@_callback.defjvp
def _no_second_derivatives(
    host_function: Callable[..., Any], result_shapes: Any, primals: Any, tangents: Any
) -> Any:
    raise ValueError(
        "bptt.jax computes first derivatives only: a derivative of its gradients (jax.hessian, "
        "jax.grad of jax.grad) is not supported"
    )


# ---------------------------------------------------------------------------------------------
# The loss: forward is one core call computing the loss and every gradient; backward scales them.


# The loss's options: activation, reduction, memory budget and compute dtype.
LossOptions = tuple[str, str, int | None, str | None]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _loss(
    options: LossOptions,
    layer_and_head: tuple[Any, ...],
    inputs: Any,
    targets: Any,
    h0: Any,
) -> Any:
    U = layer_and_head[0]
    activation, reduction, memory_budget, compute_dtype = options

    def host_loss(*arrays: np.ndarray) -> np.ndarray:
        U, W, b, V, c, inputs, targets, h0 = _host_arrays(arrays)
        if memory_budget is not None:  # the forward pass below would keep every state
            value, _, _ = _core.loss_and_grad(
                U, W, b, V, c, inputs, targets, h0, activation, reduction,
                check_finite=False, input_grad=False, memory_budget=memory_budget,
                compute_dtype=compute_dtype,
            )  # fmt: skip
        else:
            states = _core.layer_forward(
                U, W, b, inputs, h0, activation=activation, check_finite=False,
                compute_dtype=compute_dtype,
            )  # fmt: skip
            value, _, _ = _core.head_loss_and_grad(
                V, c, states[1:], targets, reduction, False, compute_dtype
            )
        return np.asarray(value, U.dtype)

    return _callback(host_loss, _scalar_like(U), *layer_and_head, inputs, targets, h0)


def _loss_forward(
    options: LossOptions,
    layer_and_head: tuple[Any, ...],
    inputs: Any,
    targets: Any,
    h0: Any,
) -> tuple[Any, Any]:
    # Each argument comes as its value and whether it is differentiated (symbolic_zeros below):
    # the core gives soft targets no gradient, which must not pass for a zero one.
    if targets.perturbed:
        raise ValueError(
            "targets: soft targets get no gradient; pass jax.lax.stop_gradient(targets)"
        )
    layer_and_head = tuple(weight.value for weight in layer_and_head)
    inputs, targets, h0 = inputs.value, targets.value, h0.value
    U = layer_and_head[0]
    activation, reduction, memory_budget, compute_dtype = options
    float_inputs = jnp.issubdtype(jnp.result_type(inputs), jnp.floating)

    def host_loss_and_grad(*arrays: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        U, W, b, V, c, inputs, targets, h0 = _host_arrays(arrays)
        value, grads, _ = _core.loss_and_grad(
            U, W, b, V, c, inputs, targets, h0, activation, reduction,
            check_finite=False, memory_budget=memory_budget, compute_dtype=compute_dtype,
        )  # fmt: skip
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


def _loss_backward(options: LossOptions, grads: tuple[Any, ...], d_loss: Any) -> tuple[Any, ...]:
    if isinstance(d_loss, jax.custom_derivatives.SymbolicZero):
        return (None,) * 5, None, None, None
    scaled = tuple(d_loss * grad for grad in grads)
    d_layer_and_head, d_h0 = scaled[:5], scaled[5]
    d_inputs = scaled[6] if len(scaled) > 6 else None
    return d_layer_and_head, d_inputs, None, d_h0  # no gradient for the targets


_loss.defvjp(_loss_forward, _loss_backward, symbolic_zeros=True)


# ---------------------------------------------------------------------------------------------
# The layer: forward keeps the hidden states, backward runs BPTT from their upstream gradients.


# The layer's options: activation, reverse and compute dtype.
LayerOptions = tuple[str, bool, str | None]


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _rnn(options: LayerOptions, layer: tuple[Any, ...], inputs: Any, h0: Any) -> Any:
    outputs, _ = _rnn_forward(options, layer, inputs, h0)
    return outputs


def _rnn_forward(
    options: LayerOptions, layer: tuple[Any, ...], inputs: Any, h0: Any
) -> tuple[Any, Any]:
    U = layer[0]
    activation, reverse, compute_dtype = options
    (T, B), H, dtype = jnp.shape(inputs)[:2], jnp.shape(U)[0], jnp.result_type(U)
    hidden_shape = jax.ShapeDtypeStruct((T, B, H), dtype)
    state_shape = jax.ShapeDtypeStruct((B, H), dtype)

    def host_layer_forward(*arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        U, W, b, inputs, h0 = arrays
        states = _core.layer_forward(
            U, W, b, inputs, h0, activation=activation, reverse=reverse, check_finite=False,
            compute_dtype=compute_dtype,
        )  # fmt: skip
        return (states[:-1], states[0]) if reverse else (states[1:], states[-1])

    hidden, h_last = _callback(host_layer_forward, (hidden_shape, state_shape), *layer, inputs, h0)
    return (hidden, h_last), (layer, inputs, h0, hidden)


def _rnn_backward(
    options: LayerOptions, residuals: tuple[Any, ...], cotangents: tuple[Any, Any]
) -> tuple[Any, ...]:
    layer, inputs, h0, hidden = residuals
    activation, reverse, compute_dtype = options
    d_hidden, d_h_last = cotangents
    float_inputs = jnp.issubdtype(jnp.result_type(inputs), jnp.floating)

    def host_layer_backward(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
        U, W, b, inputs, h0, hidden, d_hidden, d_h_last = arrays
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
            compute_dtype=compute_dtype,
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
