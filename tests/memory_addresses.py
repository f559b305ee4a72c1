"""Arrays placed at a chosen distance from a 64-byte boundary: the core's new arrays start on
one, and an array of the caller's may not."""

import numpy as np


def aligned_at(shape, dtype, offset: int) -> np.ndarray:
    """An uninitialized array whose data starts `offset` bytes past a 64-byte boundary."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    buffer = np.empty(nbytes + 128, np.uint8)
    start = (-buffer.ctypes.data) % 64 + offset
    return buffer[start : start + nbytes].view(dtype).reshape(shape)
