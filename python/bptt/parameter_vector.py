"""Named arrays that are views into one contiguous vector: an optimizer update then costs a
handful of NumPy calls on the vector rather than a handful per array, which is most of the
Python time of a small model's step."""

from collections.abc import Mapping

import numpy as np


class ParameterVector:
    """`vector` holds the arrays one after the other; `arrays` are named views into it."""

    def __init__(self, arrays: Mapping[str, np.ndarray]):
        self.names = tuple(arrays)
        self.shapes = {name: np.shape(array) for name, array in arrays.items()}
        self.vector = np.concatenate([np.ravel(array) for array in arrays.values()])
        self.arrays = self.views(self.vector)

    def views(self, vector: np.ndarray) -> dict[str, np.ndarray]:
        """The named arrays laid out in `vector` (any vector of the same length)."""
        views, offset = {}, 0
        for name in self.names:
            size = int(np.prod(self.shapes[name], dtype=np.int64))
            views[name] = vector[offset : offset + size].reshape(self.shapes[name])
            offset += size
        return views
