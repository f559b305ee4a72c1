"""Initial parameters of the RNN with softmax head."""

import math
import numbers

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bptt import memory
from bptt._model import parameter_shapes


def _check_size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name}: expected an integer >= 1, got {value!r}")
    return int(value)


def init_params(
    input_size: int,
    hidden_size: int,
    output_size: int,
    *,
    dtype: DTypeLike = np.float32,
    seed: int | None = None,
) -> dict[str, NDArray[np.floating]]:
    """U (H, D), W (H, H), b (H,), V (O, H), c (O,), drawn as torch.nn.RNN and torch.nn.Linear
    draw theirs: uniform in ±1/sqrt(H), H being the fan-in of every one of these maps but U's,
    whose scale follows the hidden layer it feeds, as in torch.nn.RNN."""
    D = _check_size("input_size", input_size)
    H = _check_size("hidden_size", hidden_size)
    O = _check_size("output_size", output_size)
    try:
        # NumPy reads None as float64
        float_dtype = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
    if float_dtype is None or float_dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype: expected float32 or float64, got {float_dtype}")
    try:
        rng = np.random.default_rng(seed)
    except (TypeError, ValueError):
        raise ValueError(f"seed: expected None or an integer >= 0, got {seed!r}") from None
    shapes = parameter_shapes(D, H, O)
    # Each array is drawn in float64, then converted.
    sizes = [math.prod(shape) for shape in shapes.values()]
    needed = sum(sizes) * float_dtype.itemsize + max(sizes) * 8
    memory.check_available(needed, f"init_params: sizes ({D}, {H}, {O})", MemoryError)
    bound = 1.0 / np.sqrt(H)
    return {
        name: rng.uniform(-bound, bound, size=shape).astype(float_dtype)
        for name, shape in shapes.items()
    }
