"""The benchmarks' problems: the standard sizes (T, B, D, H, O), float32 by default."""

import numpy as np

import bptt

STANDARD_SIZES = {
    "charrnn": (25, 1, 65, 100, 65),
    "small": (50, 16, 65, 128, 65),
    "medium": (100, 32, 128, 256, 128),
    "large": (100, 64, 256, 1024, 256),
    "long": (1000, 8, 64, 256, 64),
}
# The sizes also benchmarked with token-id inputs (the embedding path).
TOKEN_SIZES = ("charrnn", "small")


def make_problem(size: str, tokens: bool = False, dtype=np.float32):
    return problem_arrays(STANDARD_SIZES[size], tokens, dtype)


def problem_arrays(shape: tuple, tokens: bool = False, dtype=np.float32):
    """params, inputs (float (T, B, D) or token ids (T, B)) and class-id targets of a shape
    (T, B, D, H, O), drawn from fixed seeds."""
    T, B, D, H, O = shape
    rng = np.random.default_rng(0)
    params = bptt.init_params(D, H, O, dtype=dtype, seed=0)
    if tokens:
        inputs = rng.integers(0, D, size=(T, B))
    else:
        inputs = rng.standard_normal((T, B, D)).astype(dtype)
    targets = rng.integers(0, O, size=(T, B))
    return params, inputs, targets
