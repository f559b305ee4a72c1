"""Initial parameters of the RNN with softmax head."""

import math
import numbers

import numpy as np
from numpy.typing import DTypeLike, NDArray

from bptt import _arguments, memory
from bptt._model import parameter_shapes


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
    D = _arguments.integer(input_size, "input_size", 1)
    H = _arguments.integer(hidden_size, "hidden_size", 1)
    O = _arguments.integer(output_size, "output_size", 1)
    float_dtype = _arguments.float_dtype(dtype)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed: expected None or an integer >= 0, got {seed!r}")
    try:
        rng = np.random.default_rng(seed)
    except ValueError:
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
