"""Named arrays that are views into one contiguous vector: an optimizer update then costs a
handful of NumPy calls on the vector rather than a handful per array, which is most of the
Python time of a small model's step."""

import math
from collections.abc import Mapping

import numpy as np


class ParameterVector(dict):
    """The named arrays (a dict: name -> array), views one after the other into one contiguous
    `vector`. A dict, so that it goes wherever params go (bptt.loss_and_grad, bptt.forward) at
    a dict's speed."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        """The arrays' values copied into a new vector."""
        super().__init__()
        shapes = {name: np.shape(array) for name, array in arrays.items()}
        self._lay_out(np.concatenate([np.ravel(array) for array in arrays.values()]), shapes)

    def views(self, vector: np.ndarray) -> "ParameterVector":
        """The same named arrays laid out in `vector` (any vector of the same length)."""
        views = ParameterVector.__new__(ParameterVector)
        views._lay_out(vector, self.shapes)
        return views

    def _lay_out(self, vector: np.ndarray, shapes: dict[str, tuple[int, ...]]) -> None:
        self.vector, self.shapes = vector, shapes
        offset = 0
        for name, shape in shapes.items():
            size = math.prod(shape)
            self[name] = vector[offset : offset + size].reshape(shape)
            offset += size
