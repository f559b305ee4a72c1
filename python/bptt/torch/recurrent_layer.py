"""One direction of one recurrent layer as a torch autograd operation over bptt's core:

    h_t = σ(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)

forwards (or backwards in time) over time-major inputs (T, B, D), optionally with per-sequence
lengths, and its exact gradients by BPTT."""

# ruff: noqa: RUF002

import numpy as np
import torch

from bptt import _core
from bptt.torch.tensors import as_array, as_tensor


class RecurrentLayer(torch.autograd.Function):
    """Returns every state (T + 1, B, H), in the core's layout (forward: h0 in slot 0, h_t in
    slot t + 1; reverse: h_t in slot t, h0 in slot T), and a copy of h_n. The whole buffer is
    the output, so that callers slice it with ordinary autograd views; h_n is a separate output
    because, with lengths, it is not the state at step T of every sequence."""

    @staticmethod
    def forward(ctx, inputs, h0, weight_ih, weight_hh, bias, activation, lengths, reverse):
        states = _core.layer_forward(
            as_array(weight_ih),
            as_array(weight_hh),
            as_array(bias),
            as_array(inputs),
            None if h0 is None else as_array(h0),
            activation=activation,
            lengths=lengths,
            reverse=reverse,
            check_finite=False,
        )
        states = torch.from_numpy(states)
        h_last = (states[0] if reverse else states[-1]).clone()
        ctx.save_for_backward(inputs, h0, weight_ih, weight_hh, bias, states)
        ctx.activation, ctx.lengths, ctx.reverse = activation, lengths, reverse
        # No upstream gradient for states or h_n is passed to the core as None, not as zeros.
        ctx.set_materialize_grads(False)
        return states, h_last

    @staticmethod
    def backward(ctx, d_states, d_h_last):
        inputs, h0, weight_ih, weight_hh, bias, states = ctx.saved_tensors
        by_time = slice(0, -1) if ctx.reverse else slice(1, None)
        grads = _core.layer_backward(
            as_array(weight_ih),
            as_array(weight_hh),
            as_array(bias),
            as_array(inputs),
            as_array(states[by_time]),
            h0=None if h0 is None else as_array(h0),
            d_hidden=None if d_states is None else as_array(d_states[by_time]),
            d_h_last=None if d_h_last is None else as_array(d_h_last),
            activation=ctx.activation,
            lengths=ctx.lengths,
            reverse=ctx.reverse,
            check_finite=False,
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
        )


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """The hidden states by time (T, B, H), a view of the core's buffer, and h_n (B, H). With
    lengths (B,), the hidden states at padded positions (t >= lengths[b]) are zeros, as in
    torch's padded outputs."""
    states, h_last = RecurrentLayer.apply(
        inputs, h0, weight_ih, weight_hh, bias, activation, lengths, reverse
    )
    hidden = states[:-1] if reverse else states[1:]
    if lengths is None:
        return hidden, h_last
    # The core carries the last state through the padding; zeros keep the maths of the
    # output (and its gradient, which the core ignores there) consistent.
    steps = torch.arange(hidden.shape[0]).unsqueeze(1)
    real = (steps < torch.from_numpy(np.asarray(lengths))).unsqueeze(2)
    return hidden * real.to(hidden.dtype), h_last
