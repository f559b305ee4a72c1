"""The model's whole loss, L = -Σ_t y_t · log softmax(c + V σ(b + W h_{t-1} + U x_t)), as one
torch autograd operation: the core computes L and every gradient in one call in forward, and
backward only scales them by the upstream gradient."""

# ruff: noqa: RUF002

from collections.abc import Mapping
from typing import Any, Literal, overload

import torch

from bptt import _arguments, _core
from bptt._model import PARAM_NAMES
from bptt.memory_budget import parse_memory_budget
from bptt.torch.tensors import (
    as_array,
    as_compute_input,
    as_tensor,
    check_dense_cpu,
    check_float_cpu,
    first_order_only,
    products_dtype,
)

__all__ = ["RNNSoftmaxLoss", "rnn_softmax_loss"]


class RNNSoftmaxLoss(torch.autograd.Function):
    """The loss (a 0-d tensor) and h_last (B, H); the gradients are computed in forward."""

    @staticmethod
    def forward(
        ctx: Any,
        U: torch.Tensor,
        W: torch.Tensor,
        b: torch.Tensor,
        V: torch.Tensor,
        c: torch.Tensor,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        h0: torch.Tensor | None,
        activation: str,
        reduction: str,
        memory_budget: int | None,
        compute_dtype: str | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        float_inputs = inputs.is_floating_point()
        loss, grads, last_state = _core.loss_and_grad(
            as_array(U),
            as_array(W),
            as_array(b),
            as_array(V),
            as_array(c),
            as_array(inputs),
            as_array(targets),
            None if h0 is None else as_array(h0),
            activation,
            reduction,
            False,  # check_finite: NaNs propagate, as through torch's own operations
            memory_budget=memory_budget,
            compute_dtype=compute_dtype,
        )
        ctx.grads = [as_tensor(grads[name]) for name in PARAM_NAMES]
        ctx.grads += [as_tensor(grads["x"]) if float_inputs else None, as_tensor(grads["h0"])]
        # Read only by first_order_only, which joins any second derivative to them.
        ctx.save_for_backward(U, W, b, V, c, inputs, h0)
        h_last = torch.from_numpy(last_state)
        # Truncated BPTT carries h_last into the next chunk without a gradient through it.
        ctx.mark_non_differentiable(h_last)
        return torch.tensor(loss, dtype=U.dtype), h_last

    @staticmethod
    @first_order_only
    def backward(
        ctx: Any, d_loss: torch.Tensor, _d_h_last: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        # Out of place: with retain_graph, backward may run again on the same stored gradients.
        scaled = [
            None if grad is None or not needed else grad * d_loss
            for grad, needed in zip(
                ctx.grads, (*ctx.needs_input_grad[:6], ctx.needs_input_grad[7]), strict=True
            )
        ]
        return (*scaled[:6], None, scaled[6], None, None, None, None)


@overload
def rnn_softmax_loss(
    params: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    return_h_last: Literal[False] = False,
    memory_budget: int | str | None = None,
    compute_dtype: str | None = None,
) -> torch.Tensor: ...


@overload
def rnn_softmax_loss(
    params: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    return_h_last: Literal[True],
    memory_budget: int | str | None = None,
    compute_dtype: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]: ...


def rnn_softmax_loss(
    params: Mapping[str, torch.Tensor],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    *,
    h0: torch.Tensor | None = None,
    activation: str = "tanh",
    reduction: str = "sum",
    return_h_last: bool = False,
    memory_budget: int | str | None = None,
    compute_dtype: str | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """bptt.loss_and_grad's loss as a differentiable torch scalar, in one core call.

    params: tensors U (H, D), W (H, H), b (H,), V (O, H), c (O,), float32 or float64 on the CPU
    (`bptt.init_params` arrays through `torch.from_numpy`, or nn.Parameters). inputs: float
    (T, B, D) or integer token ids (T, B); targets: class ids (T, B), -1 meaning no loss at that
    step, or soft targets (T, B, O) (no gradient flows to them); h0: (B, H) or None (zeros).
    Unbatched (T, D) / (T,) inputs take (T,) / (T, O) targets and an (H,) h0. Gradients reach U,
    W, b, V, c, float inputs and h0. With return_h_last, returns (loss, h_last), h_last the last
    state without a gradient (for truncated BPTT). memory_budget: the working memory of the core's
    call at most, as bptt.loss_and_grad takes it (bytes, or a string such as "512MiB"); the
    same loss and gradients, bit for bit, under any budget. compute_dtype: as bptt.loss_and_grad
    takes it ("bfloat16": bfloat16 product operands, float32 accumulation; float32 params), and
    "bfloat16" for float32 params inside torch.autocast("cpu", dtype=torch.bfloat16) when None;
    then bfloat16 float inputs and h0 are taken as float32. The loss and gradients are float32."""
    weights = _arguments.model_params(params)
    activation, reduction = _arguments.activation(activation), _arguments.reduction(reduction)
    return_h_last = _arguments.flag(return_h_last, "return_h_last")
    budget = parse_memory_budget(memory_budget)
    U = weights[0]
    check_float_cpu(U, "params['U']")
    compute_dtype = products_dtype(compute_dtype, U.dtype)
    inputs = as_compute_input(inputs, compute_dtype)
    h0 = as_compute_input(h0, compute_dtype)
    for name, weight in zip(PARAM_NAMES[1:], weights[1:], strict=True):
        check_float_cpu(weight, f"params['{name}']", U.dtype)
    _check_data(inputs, "inputs", U.dtype)
    _check_data(targets, "targets", U.dtype)
    if targets.is_floating_point() and targets.requires_grad:
        raise ValueError("targets: soft targets get no gradient; pass targets.detach()")
    if h0 is not None:
        check_float_cpu(h0, "h0", U.dtype)
    unbatched = inputs.dim() == (2 if inputs.is_floating_point() else 1)
    if unbatched:
        # Here, in unbatched terms: after unsqueeze the core would report (T, B) shapes.
        if targets.dim() != (2 if targets.is_floating_point() else 1):
            raise ValueError(
                "targets: expected class ids (T,) or soft targets (T, O) for unbatched inputs, "
                f"got shape {tuple(targets.shape)}"
            )
        if h0 is not None and h0.dim() != 1:
            raise ValueError(f"h0: expected shape (H,) for unbatched inputs, got {tuple(h0.shape)}")
        inputs, targets = inputs.unsqueeze(1), targets.unsqueeze(1)
        h0 = None if h0 is None else h0.unsqueeze(0)
    loss, h_last = RNNSoftmaxLoss.apply(
        *weights, inputs, targets, h0, activation, reduction, budget, compute_dtype
    )
    if not return_h_last:
        return loss
    return loss, (h_last.squeeze(0) if unbatched else h_last)


def _check_data(tensor: torch.Tensor, name: str, dtype: torch.dtype) -> None:
    """Integer ids, or floats of the params' dtype, dense on the CPU."""
    check_dense_cpu(tensor, name)
    if tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name}: expected integer ids or floats, got {tensor.dtype}")
    if tensor.is_floating_point():
        check_float_cpu(tensor, name, dtype)
