"""The checks of arguments that the NumPy API (bptt) and the adapters (bptt.jax, bptt.torch)
share, in the core's words: each error names the argument, what was expected and what came.

Internal: the package's modules import it; users call the public functions, which run these
checks before the core runs its own.

- `model_params(params)`: U, W, b, V, c from a mapping of exactly those keys.
- `layer_params(params)`, `head_params(params)`: U, W, b or V, c from a mapping holding them
  (other entries, such as the other part's parameters, are left alone).
- `flag(value, name)`: a bool argument.
- `activation(value)`, `reduction(value)`: one of `bptt._model`'s names.
- `check_shape(shape, name, *axes)`: a shape, described by its axes' symbols and extents.
- `as_array`, `is_unbatched`, `with_batch_axis`, `add_batch_axis`, `unbatched_inputs`, `unbatched_targets`,
  `matrix_shape`: NumPy arguments, and unbatched calls' arrays checked in their own shapes
  before they get the batch axis of one that the core reads.
"""

from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike

from bptt._model import ACTIVATIONS, PARAM_NAMES, REDUCTIONS

LAYER_PARAM_NAMES = PARAM_NAMES[:3]  # U, W, b: a_t = b + W h_{t-1} + U x_t
HEAD_PARAM_NAMES = PARAM_NAMES[3:]  # V, c: o_t = c + V h_t

# itemgetter picks every key in one C call: these run on every call of the API.
_MODEL_GETTER = itemgetter(*PARAM_NAMES)
_LAYER_GETTER = itemgetter(*LAYER_PARAM_NAMES)
_HEAD_GETTER = itemgetter(*HEAD_PARAM_NAMES)


def model_params(params: object) -> tuple[Any, Any, Any, Any, Any]:
    """(U, W, b, V, c) from a mapping with exactly these keys."""
    arrays = _unpack(params, PARAM_NAMES, _MODEL_GETTER, others_allowed=False)
    return cast(tuple[Any, Any, Any, Any, Any], arrays)


def layer_params(params: object) -> tuple[Any, Any, Any]:
    """(U, W, b) from a mapping holding them."""
    arrays = _unpack(params, LAYER_PARAM_NAMES, _LAYER_GETTER, others_allowed=True)
    return cast(tuple[Any, Any, Any], arrays)


def head_params(params: object) -> tuple[Any, Any]:
    """(V, c) from a mapping holding them."""
    return cast(
        tuple[Any, Any], _unpack(params, HEAD_PARAM_NAMES, _HEAD_GETTER, others_allowed=True)
    )


def _unpack(
    params: object, names: tuple[str, ...], getter: Callable[[Any], Any], *, others_allowed: bool
) -> tuple[Any, ...]:
    if others_allowed:
        expected = f"a mapping holding {', '.join(names[:-1])} and {names[-1]}"
    else:
        expected = f"a dict with exactly the keys {', '.join(names)}"
    if not isinstance(params, Mapping):
        raise TypeError(f"params: expected {expected}, got {type(params).__name__}")
    try:
        arrays = getter(params)
    except KeyError:
        arrays = None
    if arrays is None or (not others_allowed and len(params) != len(names)):
        missing = [name for name in names if name not in params]
        extra = [] if others_allowed else [repr(name) for name in params if name not in names]
        problems = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []
        )
        raise ValueError(f"params: expected {expected}; {'; '.join(problems)}")
    return arrays


def flag(value: object, name: str) -> bool:
    """A bool argument: None or a string would otherwise pass for False or True."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def activation(value: object) -> str:
    """The activation's name, one of bptt._model.ACTIVATIONS."""
    return choice(value, "activation", ACTIVATIONS)


def reduction(value: object) -> str:
    """The loss reduction's name, one of bptt._model.REDUCTIONS."""
    return choice(value, "reduction", REDUCTIONS)


def choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """A string among `choices`: TypeError if it is no string, ValueError if not among them."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, got {type(value).__name__}")
    if value not in choices:
        expected = ", ".join(repr(option) for option in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return value


def check_shape(
    shape: tuple[int, ...], name: str, *axes: tuple[str, int | None], context: str = ""
) -> None:
    """axes: (symbol, extent, or None for any). The message reads "expected shape (H, H) =
    (5, 5)" when every extent is known, "(T, B, D) with D = 4" when some are; `context` ends
    what was expected (" for unbatched inputs")."""
    if len(shape) == len(axes) and all(
        extent is None or got == extent for got, (_, extent) in zip(shape, axes, strict=True)
    ):
        return
    symbols, extents = zip(*axes, strict=True)
    expected = "(" + ", ".join(symbols) + ("," if len(axes) == 1 else "") + ")"
    if None not in extents:
        expected += f" = {extents}"
    elif any(extent is not None for extent in extents):
        known = {symbol: extent for symbol, extent in axes if extent is not None}
        expected += " with " + ", ".join(f"{symbol} = {extent}" for symbol, extent in known.items())
    raise ValueError(f"{name}: expected shape {expected}{context}, got {tuple(shape)}")


def as_array(value: object, name: str) -> np.ndarray:
    """value as a NumPy array (no copy of an array); ValueError naming it if it cannot be one."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:  # e.g. ragged nested lists
        raise ValueError(
            f"{name}: expected an array, got {type(value).__name__}: {error}"
        ) from None


def is_unbatched(inputs: np.ndarray) -> bool:
    """(T, D) float vectors or (T,) token ids: one sequence without a batch axis. Inputs of any
    other dtype go to the core as they are, which refuses them naming the dtype."""
    kind = inputs.dtype.kind
    return inputs.ndim == 2 if kind == "f" else (kind in "iu" and inputs.ndim == 1)


def with_batch_axis(
    value: object, name: str, *axes: tuple[str, int | None], batch_axis: int
) -> np.ndarray | None:
    """An unbatched call's array (None stays None) checked against its own shape `axes` (see
    check_shape), as the view with a batch axis of one at `batch_axis` that the core reads: the
    core's errors would quote the batched shape, (T, B, H) = (5, 1, 4)."""
    if value is None:
        return None
    return add_batch_axis(as_array(value, name), name, *axes, batch_axis=batch_axis)


def add_batch_axis(
    array: np.ndarray, name: str, *axes: tuple[str, int | None], batch_axis: int
) -> np.ndarray:
    """with_batch_axis of an array."""
    check_shape(array.shape, name, *axes, context=" for unbatched inputs")
    return np.expand_dims(array, batch_axis)


def unbatched_inputs(inputs: np.ndarray, input_size: int | None) -> np.ndarray:
    """Unbatched inputs as the batch of one the core reads: float vectors (T, D) checked against
    D here, in their own shape; token ids (T,), whose range the core checks."""
    if inputs.ndim == 2:
        return add_batch_axis(inputs, "inputs", ("T", None), ("D", input_size), batch_axis=1)
    return inputs[:, None]


def unbatched_targets(targets: object, steps: int, output_size: int | None) -> np.ndarray:
    """An unbatched call's class ids (T,) or soft targets (T, O), checked in their own shape, as
    the batch of one (T, 1) / (T, 1, O) that the core reads; targets of no float or integer
    dtype pass on to the core, which names what it expected."""
    array = as_array(targets, "targets")
    if array.dtype.kind in "iu":
        axes: tuple[tuple[str, int | None], ...] = (("T", steps),)
    elif array.dtype.kind == "f":
        axes = (("T", steps), ("O", output_size))
    else:
        return array
    return add_batch_axis(array, "targets", *axes, batch_axis=1)


def matrix_shape(matrix: ArrayLike) -> tuple[int, int] | tuple[None, None]:
    """The two extents of a parameter matrix (U (H, D), V (O, H)), or (None, None), any extent,
    while it is no matrix: the core reports that first."""
    try:
        shape = np.shape(matrix)
    except ValueError:  # ragged nested lists, which the core refuses naming the parameter
        return (None, None)
    return (shape[0], shape[1]) if len(shape) == 2 else (None, None)
