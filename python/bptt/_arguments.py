"""The checks of arguments that the NumPy API (bptt) and the adapters (bptt.jax, bptt.torch)
share, in the core's words: each error names the argument, what was expected and what came.

Internal: the package's modules import it; users call the public functions, which run these
checks before the core runs its own.

- `model_params(params)`: U, W, b, V, c from a mapping of exactly those keys.
- `layer_params(params)`, `head_params(params)`: U, W, b or V, c from a mapping holding them
  (other entries, such as the other part's parameters, are left alone).
- `flag(value, name)`: a bool argument.
- `integer(value, name, least, most)`: an integer argument within bounds.
- `float_dtype(value)`: a params dtype, float32 or float64.
- `activation(value)`, `reduction(value)`: one of `bptt._model`'s names.
- `check_shape(shape, name, *axes)`: a shape, described by its axes' symbols and extents.
- `as_array(value, name)`: a NumPy argument.
- `is_unbatched`, `by_step`, `state`, `restate_unbatched`: one sequence without its batch
  axis, which the core reads as a batch of one, and the core's errors about it said again in
  the caller's shapes.
"""

import numbers
from collections.abc import Callable, Mapping
from operator import itemgetter
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from bptt._model import ACTIVATIONS, PARAM_NAMES, REDUCTIONS

LAYER_PARAM_NAMES = PARAM_NAMES[:3]  # U, W, b: a_t = b + W h_{t-1} + U x_t
HEAD_PARAM_NAMES = PARAM_NAMES[3:]  # V, c: o_t = c + V h_t

# These checks run on every call of the API, where microseconds show: each takes the usual case
# first (a dict, a bool, a known name), and itemgetter picks every key in one C call.
_MODEL_GETTER = itemgetter(*PARAM_NAMES)
_LAYER_GETTER = itemgetter(*LAYER_PARAM_NAMES)
_HEAD_GETTER = itemgetter(*HEAD_PARAM_NAMES)


def model_params(params: object) -> tuple[Any, Any, Any, Any, Any]:
    """(U, W, b, V, c) from a mapping with exactly these keys."""
    if type(params) is dict and len(params) == len(PARAM_NAMES):
        try:
            return _MODEL_GETTER(params)
        except KeyError:
            pass  # _unpack names it
    return _unpack(params, PARAM_NAMES, _MODEL_GETTER, others_allowed=False)


def layer_params(params: object) -> tuple[Any, Any, Any]:
    """(U, W, b) from a mapping holding them."""
    return _unpack(params, LAYER_PARAM_NAMES, _LAYER_GETTER, others_allowed=True)


def head_params(params: object) -> tuple[Any, Any]:
    """(V, c) from a mapping holding them."""
    return _unpack(params, HEAD_PARAM_NAMES, _HEAD_GETTER, others_allowed=True)


def _unpack(
    params: object, names: tuple[str, ...], getter: Callable[[Any], Any], *, others_allowed: bool
) -> Any:
    """The tuple of params[name] for the names (typed by each caller)."""
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params: expected {_keys(names, others_allowed)}, got {type(params).__name__}"
        )
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
        raise ValueError(f"params: expected {_keys(names, others_allowed)}; {'; '.join(problems)}")
    return arrays


def _keys(names: tuple[str, ...], others_allowed: bool) -> str:
    if others_allowed:
        return f"a mapping holding {', '.join(names[:-1])} and {names[-1]}"
    return f"a dict with exactly the keys {', '.join(names)}"


def flag(value: object, name: str) -> bool:
    """A bool argument: None or a string would otherwise pass for False or True."""
    if type(value) is bool:
        return value
    if not isinstance(value, np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def integer(value: object, name: str, least: int, most: int | None = None) -> int:
    """An integer argument in [least, most]: TypeError if it is no integer (a bool, a float, a
    string), ValueError if it is out of bounds."""
    bounds = f">= {least}" if most is None else f"in [{least}, {most}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer {bounds}, got {value!r}")
    number = int(value)
    if number < least or (most is not None and number > most):
        raise ValueError(f"{name}: expected an integer {bounds}, got {value!r}")
    return number


def float_dtype(value: object) -> np.dtype:
    """float32 or float64 from anything NumPy reads as a dtype; TypeError naming dtype otherwise
    (None too, which NumPy would read as float64)."""
    try:
        dtype = np.dtype(value) if value is not None else None  # type: ignore[call-overload]
    except TypeError:
        dtype = None
    if dtype is None or dtype not in (np.float32, np.float64):
        shown = repr(value) if dtype is None else dtype.name
        raise TypeError(f"dtype: expected float32 or float64, got {shown}")
    return dtype


def activation(value: object) -> str:
    """The activation's name, one of bptt._model.ACTIVATIONS."""
    if type(value) is str and value in ACTIVATIONS:
        return value
    return choice(value, "activation", ACTIVATIONS)


def compute_dtype(value: object, params_dtype: DTypeLike) -> str | None:
    """None, or the name of a compute dtype the params' dtype takes: bfloat16 operands for
    float32 params, or the params' own dtype; ValueError naming compute_dtype otherwise, in the
    core's words (for the adapters, which check before the core runs)."""
    own = np.dtype(params_dtype).name
    if value is None:
        return value
    if isinstance(value, str) and value == own:  # a subclass too (np.str_), as the core takes
        return own
    if isinstance(value, str) and value == "bfloat16":
        if own == "float32":
            return "bfloat16"
        raise ValueError(f"compute_dtype: 'bfloat16' takes float32 parameters, got {own}")
    raise ValueError(
        f"compute_dtype: expected None, 'bfloat16' (with float32 parameters) or '{own}' (the "
        f"parameters' dtype), got {value!r}"
    )


def reduction(value: object) -> str:
    """The loss reduction's name, one of bptt._model.REDUCTIONS."""
    if type(value) is str and value in REDUCTIONS:
        return value
    return choice(value, "reduction", REDUCTIONS)


def choice(value: object, name: str, choices: tuple[str, ...]) -> str:
    """A string among `choices`: TypeError if it is no string, ValueError if not among them."""
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected a string, got {type(value).__name__}")
    if value not in choices:
        expected = ", ".join(repr(option) for option in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    return value


Axes = tuple[tuple[str, int | None], ...]  # (symbol, extent or None for any) of each axis


def check_shape(
    shape: tuple[int, ...], name: str, *axes: tuple[str, int | None], context: str = ""
) -> None:
    """ValueError unless shape fits axes. The message reads "expected shape (H, H) = (5, 5)"
    when every extent is known, "(T, B, D) with D = 4" when some are; `context` ends what was
    expected (" for unbatched inputs")."""
    if not fits(shape, axes):
        raise ValueError(shape_message(shape, name, axes, context))


def fits(shape: tuple[int, ...], axes: Axes) -> bool:
    return len(shape) == len(axes) and all(
        extent is None or got == extent for got, (_, extent) in zip(shape, axes, strict=True)
    )


def shape_message(shape: tuple[int, ...], name: str, axes: Axes, context: str = "") -> str:
    symbols, extents = zip(*axes, strict=True)
    expected = "(" + ", ".join(symbols) + ("," if len(axes) == 1 else "") + ")"
    if None not in extents:
        expected += f" = {extents}"
    elif any(extent is not None for extent in extents):
        known = {symbol: extent for symbol, extent in axes if extent is not None}
        expected += " with " + ", ".join(f"{symbol} = {extent}" for symbol, extent in known.items())
    return f"{name}: expected shape {expected}{context}, got {tuple(shape)}"


def as_array(value: object, name: str) -> np.ndarray:
    """value as a NumPy array (no copy of an array); NumPy's ValueError (ragged nested lists) or
    TypeError if it cannot be one, said again naming it."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as error:
        kind = ValueError if isinstance(error, ValueError) else TypeError
        raise kind(f"{name}: expected an array, got {type(value).__name__}: {error}") from None


# ---------------------------------------------------------------------------------------------
# Unbatched calls: one sequence, without the batch axis. The core reads it as a batch of one,
# views with a batch axis of 1 and no copy; when it refuses one, its error quotes the batched
# shape, (T, B, H) = (5, 1, 4), and restate_unbatched says it again in the caller's shapes.
# Checked only once the core has refused: a call that the core accepts costs nothing more.


UNBATCHED = " for unbatched inputs"  # the end of what an error expected of such a call


def is_unbatched(inputs: np.ndarray) -> bool:
    """(T, D) float vectors or (T,) token ids: one sequence without a batch axis. Inputs of any
    other dtype go to the core as they are, which refuses them naming the dtype."""
    kind = inputs.dtype.kind
    return inputs.ndim == 2 if kind == "f" else (kind in "iu" and inputs.ndim == 1)


def by_step(value: object, name: str) -> np.ndarray:
    """A sequence's array by step, (T, ...), as the batch of one (T, 1, ...); a 0-d value as it
    is, for the core to refuse."""
    array = as_array(value, name)
    return array[:, None] if array.ndim else array


def state(value: object, name: str) -> np.ndarray | None:
    """A sequence's state (H,), or None, as the batch of one (1, H)."""
    return None if value is None else as_array(value, name)[None]


def restate_unbatched(
    error: ValueError, steps: int, U: Any, V: Any, arrays: Mapping[str, Any]
) -> None:
    """The core refused an unbatched call's batch of one: when its error is about one of the
    arrays given by name (inputs, targets, hidden, d_hidden, h0, d_h_last) and that array does
    not fit its unbatched shape, with the extents read from the params U (H, D) and V (O, H),
    raise that in the caller's shapes instead; else return, and the core's own error stands."""
    name, _, problem = str(error).partition(": ")
    array = arrays.get(name)
    if array is None or problem.startswith("expected an array"):
        return  # not an array at all (ragged nested lists): the core's error stands
    float_array = np.asarray(array).dtype.kind == "f"
    if name == "inputs" and not float_array:
        return  # token ids (T,) have the one shape of a sequence's: the core's error stands
    H, D = matrix_shape(U)
    O, head_H = matrix_shape(V)
    H = head_H if H is None else H
    axes: Axes = {
        "inputs": (("T", None), ("D", D)),
        "hidden": (("T", steps), ("H", H)),
        "d_hidden": (("T", steps), ("H", H)),
        "h0": (("H", H),),
        "d_h_last": (("H", H),),
        "targets": (("T", steps), ("O", O)) if float_array else (("T", steps),),
    }[name]
    shape = np.shape(array)
    if not fits(shape, axes):
        # D is params['U']'s: either may be the one in error, so the message names both.
        source = f" (params['U'] is (H, D) = ({H}, {D}))" if name == "inputs" else ""
        raise ValueError(shape_message(shape, name, axes, source + UNBATCHED)) from None


def matrix_shape(matrix: Any) -> tuple[int, int] | tuple[None, None]:
    """The two extents of a parameter matrix (U (H, D), V (O, H)), or (None, None), any extent,
    while it is no matrix: the core reports that first."""
    try:
        shape = np.shape(matrix)
    except ValueError:  # ragged nested lists, which the core refuses naming the parameter
        return (None, None)
    return (shape[0], shape[1]) if len(shape) == 2 else (None, None)
