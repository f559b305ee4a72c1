"""Tensors in and out of the core: dtype and device checks, zero-copy NumPy views."""

import numpy as np
import torch

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_float_cpu(tensor, name: str, dtype: torch.dtype | None = None) -> None:
    """A float32 or float64 CPU tensor (of `dtype`, if given); TypeError naming `name` if not."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.device.type != "cpu":
        raise TypeError(
            f"{name}: expected a CPU tensor (bptt's core runs on the CPU), got one on "
            f"{tensor.device}"
        )
    if dtype is not None and tensor.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, like the weights, got {tensor.dtype}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected dtype torch.float32 or torch.float64, got {tensor.dtype}"
        )


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a NumPy array, no copy (the core copies non-contiguous arrays)."""
    return tensor.detach().resolve_neg().numpy()


def as_tensor(array: np.ndarray | None) -> torch.Tensor | None:
    """The core's result as a tensor sharing its memory."""
    return None if array is None else torch.from_numpy(array)
