"""Tensors in and out of the core: layout, dtype and device checks, zero-copy NumPy views, and
backward passes that refuse to be differentiated again."""

import functools
from collections.abc import Callable
from typing import Any, overload

import numpy as np
import torch

__all__ = [
    "FLOAT_DTYPES",
    "as_array",
    "as_compute_input",
    "as_tensor",
    "check_dense_cpu",
    "check_float_cpu",
    "first_order_only",
    "products_dtype",
]

FLOAT_DTYPES = (torch.float32, torch.float64)

# An autograd Function's backward: (ctx, *upstream gradients) -> one gradient per input.
Backward = Callable[..., tuple[torch.Tensor | None, ...]]


def check_dense_cpu(tensor: object, name: str) -> None:
    """A dense (strided) CPU tensor, the memory the core can read; TypeError naming `name` if not."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.is_nested:
        raise TypeError(f"{name}: expected a dense (strided) tensor, got a nested tensor")
    if tensor.is_quantized:
        raise TypeError(
            f"{name}: expected a float or integer tensor, got a quantized one ({tensor.dtype}; "
            "convert it with .dequantize())"
        )
    if tensor.layout != torch.strided:
        raise TypeError(
            f"{name}: expected a dense (strided) tensor, got layout {tensor.layout} "
            "(convert it with .to_dense())"
        )
    if tensor.device.type != "cpu":
        raise TypeError(
            f"{name}: expected a CPU tensor (bptt's core runs on the CPU), got one on "
            f"{tensor.device}"
        )


def check_float_cpu(tensor: torch.Tensor, name: str, dtype: torch.dtype | None = None) -> None:
    """A dense float32 or float64 CPU tensor (of `dtype`, if given); TypeError naming `name` if
    not."""
    check_dense_cpu(tensor, name)
    if dtype is not None and tensor.dtype != dtype:
        raise TypeError(f"{name}: expected dtype {dtype}, like the weights, got {tensor.dtype}")
    if tensor.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name}: expected dtype torch.float32 or torch.float64, got {tensor.dtype}"
        )


def products_dtype(compute_dtype: str | None, weights_dtype: torch.dtype) -> str | None:
    """The compute_dtype a call runs (the core checks it): the one asked for, else "bfloat16"
    for float32 weights inside torch.autocast("cpu", dtype=torch.bfloat16), else None (the
    weights' own dtype). An autocast to another dtype (float16) leaves the products alone."""
    if compute_dtype is None and weights_dtype == torch.float32:
        autocast = torch.is_autocast_enabled("cpu")
        if autocast and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            return "bfloat16"
    return compute_dtype


@overload
def as_compute_input(tensor: torch.Tensor, compute_dtype: str | None) -> torch.Tensor: ...
@overload
def as_compute_input(tensor: None, compute_dtype: str | None) -> None: ...
def as_compute_input(tensor: torch.Tensor | None, compute_dtype: str | None) -> torch.Tensor | None:
    """A bfloat16 tensor (an autocast operation's output) as float32, exactly, when the products
    take bfloat16 operands; any other as it is (the checks that follow name its dtype)."""
    if (
        not isinstance(tensor, torch.Tensor)  # None, or what the checks that follow refuse
        or compute_dtype != "bfloat16"
        or tensor.dtype != torch.bfloat16
    ):
        return tensor
    return tensor.float()


def as_array(tensor: torch.Tensor) -> np.ndarray:
    """The tensor's memory as a NumPy array, no copy (the core copies non-contiguous arrays)."""
    return tensor.detach().resolve_neg().numpy()


def as_tensor(array: np.ndarray | None) -> torch.Tensor | None:
    """The core's result as a tensor sharing its memory."""
    return None if array is None else torch.from_numpy(array)


class _NotDifferentiableAgain(torch.autograd.Function):
    """Passes gradients on unchanged, as outputs of a node joined to what they depend on, whose
    backward raises."""

    @staticmethod
    def forward(ctx: Any, grad_count: int, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(tensor.clone() for tensor in tensors[:grad_count])

    @staticmethod
    def backward(ctx: Any, *_: torch.Tensor) -> None:
        raise RuntimeError(
            "bptt.torch: trying to differentiate twice, through gradients computed by bptt's "
            "core: second-order gradients (create_graph=True, then backward or grad of a "
            "gradient) are not supported"
        )


def first_order_only(backward: Backward) -> Backward:
    """For a backward computed by the core, whose gradients are constants to autograd: under
    create_graph=True they come out of a node that raises when differentiated, joined to the
    upstream gradients and the saved forward inputs, so that a second derivative fails instead
    of silently missing its second-order terms.

    torch's @once_differentiable is not enough: it only guards when an upstream gradient needs
    grad (grad(loss, ..., create_graph=True) passes ones), and joins its error node to detached
    copies, which torch.autograd.grad(..., inputs=x) never visits."""

    @functools.wraps(backward)
    def wrapper(ctx: Any, *grad_outputs: torch.Tensor | None) -> tuple[torch.Tensor | None, ...]:
        with torch.no_grad():
            grads = backward(ctx, *grad_outputs)
        if not torch.is_grad_enabled():  # the usual backward, without create_graph
            return grads
        depends_on = [
            tensor
            for tensor in (*grad_outputs, *ctx.saved_tensors)
            if tensor is not None and tensor.requires_grad
        ]
        present = [grad for grad in grads if grad is not None]
        if not depends_on or not present:
            return grads
        joined = iter(_NotDifferentiableAgain.apply(len(present), *present, *depends_on))
        return tuple(None if grad is None else next(joined) for grad in grads)

    return wrapper
