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
    T, B, D, H, O = STANDARD_SIZES[size]
    rng = np.random.default_rng(0)
    params = bptt.init_params(D, H, O, dtype=dtype, seed=0)
    if tokens:
        inputs = rng.integers(0, D, size=(T, B))
    else:
        inputs = rng.standard_normal((T, B, D)).astype(dtype)
    targets = rng.integers(0, O, size=(T, B))
    return params, inputs, targets
