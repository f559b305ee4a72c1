"""One direction of one recurrent layer as a torch autograd operation over bptt's core:

    h_t = σ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

forwards (or backwards in time) over time-major inputs (T, B, D), optionally with per-sequence
lengths, and its exact gradients by BPTT."""

# ruff: noqa: RUF002

from typing import Any

import numpy as np
import torch

from bptt import _core
from bptt.torch.tensors import as_array, as_tensor, first_order_only

__all__ = ["RecurrentLayer", "recurrent_layer"]


class RecurrentLayer(torch.autograd.Function):
    """Returns the hidden states by time (T, B, H), the core's buffer of states (T + 1, B, H)
    without h0 and with no copy, and a copy of h_n: a separate output because, with lengths, it
    is not the state at step T of every sequence.

    nn.RNN's output may be changed in place before backward, and so may this one: backward
    reads the states from the buffer while the output's version says it is unchanged, and
    otherwise computes them again from the saved inputs (the forward is deterministic), as it
    does when backward runs a second time (retain_graph)."""

    @staticmethod
    def forward(
        ctx: Any,
        inputs: torch.Tensor,
        h0: torch.Tensor | None,
        weight_ih: torch.Tensor,
        weight_hh: torch.Tensor,
        bias: torch.Tensor,
        activation: str,
        lengths: np.ndarray | None,
        reverse: bool,
        compute_dtype: str | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.activation, ctx.lengths, ctx.reverse = activation, lengths, reverse
        ctx.compute_dtype = compute_dtype
        states = _forward_states(ctx, inputs, h0, weight_ih, weight_hh, bias)
        # A tensor of its own over the buffer, not an autograd view of one made here: torch
        # forbids changing those in place.
        hidden = torch.from_numpy(states[:-1] if reverse else states[1:])
        h_last = torch.from_numpy(states[0] if reverse else states[-1]).clone()
        ctx.save_for_backward(inputs, h0, weight_ih, weight_hh, bias)
        # The buffer is kept outside the saved tensors, where changing the output in place
        # would make backward raise; the detached alias shares the output's version counter.
        ctx.states, ctx.output_alias = states, hidden.detach()
        # Under torch.inference_mode no backward follows, and its tensors have no version.
        ctx.output_version = None if hidden.is_inference() else hidden._version
        # No upstream gradient for hidden or h_n is passed to the core as None, not as zeros.
        ctx.set_materialize_grads(False)
        return hidden, h_last

    @staticmethod
    @first_order_only
    def backward(
        ctx: Any, d_hidden: torch.Tensor | None, d_h_last: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        inputs, h0, weight_ih, weight_hh, bias = ctx.saved_tensors
        states, alias = ctx.states, ctx.output_alias
        # Released here, as saved tensors are after a backward without retain_graph.
        ctx.states = ctx.output_alias = None
        if states is None or alias._version != ctx.output_version:
            states = _forward_states(ctx, inputs, h0, weight_ih, weight_hh, bias)
        grads = _core.layer_backward(
            as_array(weight_ih),
            as_array(weight_hh),
            as_array(bias),
            as_array(inputs),
            states[:-1] if ctx.reverse else states[1:],
            h0=None if h0 is None else as_array(h0),
            d_hidden=None if d_hidden is None else as_array(d_hidden),
            d_h_last=None if d_h_last is None else as_array(d_h_last),
            activation=ctx.activation,
            lengths=ctx.lengths,
            reverse=ctx.reverse,
            check_finite=False,
            input_grad=ctx.needs_input_grad[0],
            compute_dtype=ctx.compute_dtype,
        )
        needs = ctx.needs_input_grad
        return (
            as_tensor(grads["x"]) if needs[0] else None,
            as_tensor(grads["h0"]) if needs[1] else None,
            as_tensor(grads["U"]) if needs[2] else None,
            as_tensor(grads["W"]) if needs[3] else None,
            as_tensor(grads["b"]) if needs[4] else None,
            None,
            None,
            None,
            None,
        )


def _forward_states(
    ctx: Any,
    inputs: torch.Tensor,
    h0: torch.Tensor | None,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias: torch.Tensor,
) -> np.ndarray:
    """The core's buffer of states (T + 1, B, H), h0 first (last, reversed)."""
    return _core.layer_forward(
        as_array(weight_ih),
        as_array(weight_hh),
        as_array(bias),
        as_array(inputs),
        None if h0 is None else as_array(h0),
        activation=ctx.activation,
        lengths=ctx.lengths,
        reverse=ctx.reverse,
        check_finite=False,
        compute_dtype=ctx.compute_dtype,
    )


# Run as it is under torch.compile, which cannot trace the core anyway: traced, NumPy's slice of
# the buffer becomes a torch view of it, and the output one that torch forbids changing in place.
@torch.compiler.disable
def recurrent_layer(
    inputs: torch.Tensor,
    h0: torch.Tensor | None,
    weight_ih: torch.Tensor,
    weight_hh: torch.Tensor,
    bias: torch.Tensor,
    *,
    activation: str,
    lengths: np.ndarray | None = None,
    reverse: bool = False,
    compute_dtype: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states by time (T, B, H), on the core's buffer, and h_n (B, H). With
    lengths (B,), the hidden states at padded positions (t >= lengths[b]) are zeros, as in
    torch's padded outputs. compute_dtype as bptt.loss_and_grad takes it."""
    hidden, h_last = RecurrentLayer.apply(
        inputs, h0, weight_ih, weight_hh, bias, activation, lengths, reverse, compute_dtype
    )
    if lengths is None:
        return hidden, h_last
    # The core carries the last state through the padding; zeros keep the maths of the
    # output (and its gradient, which the core ignores there) consistent.
    steps = torch.arange(hidden.shape[0]).unsqueeze(1)
    real = (steps < torch.from_numpy(np.asarray(lengths))).unsqueeze(2)
    return hidden * real.to(hidden.dtype), h_last
