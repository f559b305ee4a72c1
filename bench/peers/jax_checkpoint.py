"""JAX with activation checkpointing, as a user would write it to fit a memory budget: a
lax.scan over segments of `segment` steps (a divisor of T), each segment jax.checkpoint of
jax_scan's sequence loss (its own lax.scan over the steps, with the segment's input projection,
head and log-softmax), so that the backward pass keeps each segment's first state and computes
the segment again; all under jit(value_and_grad), as jax_scan.

prevent_cse=False: jax.checkpoint's documentation says CSE prevention is unnecessary inside a
lax.scan, and it can foil other optimizations."""

import functools

from peers import jax_scan
from peers.jax_scan import set_threads, unavailable, versions  # noqa: F401 (its interface)

NAME = "JAX checkpoint"


class Runner(jax_scan.Runner):
    def __init__(self, problem, segment: int):
        T = problem.shape[0]
        if not 1 <= segment <= T or T % segment:
            raise ValueError(f"segment: expected a divisor of T = {T}, got {segment}")
        self.segment = segment
        super().__init__(problem)

    def loss(self, U, W, b, V, c, h0, inputs, targets):
        import jax

        count = inputs.shape[0] // self.segment
        pieces = tuple(
            array.reshape(count, self.segment, *array.shape[1:]) for array in (inputs, targets)
        )
        segment_loss = jax.checkpoint(
            functools.partial(jax_scan.sequence_loss, tokens=self.tokens), prevent_cse=False
        )

        def step(h, piece):
            return segment_loss(U, W, b, V, c, h, *piece)

        _, losses = jax.lax.scan(step, h0, pieces)
        return losses.sum()
