"""The JAX backend gives the same bits at any thread count of the core: bptt.jax.loss's value
and its gradients (parameters, inputs, h0) under jax.jit(jax.value_and_grad), at 1, 2, 3, 4 and
7 threads (`bptt.set_num_threads`)."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")

from test_same_bits_any_threads import at_each_thread_count, problem, restore_threads  # noqa: F401

import bptt.jax


@pytest.mark.parametrize(
    "size",
    [
        (60, 16, 20, 192, 24),  # a step on one thread: two threads pipeline the chunks
        (30, 64, 64, 256, 64),  # steps split across threads
        (25, 1, 65, 100, 65),  # too short for chunks: stepwise
    ],
    ids=str,
)
def test_loss_and_its_gradients_are_the_same_bits_on_any_thread_count(size):
    params, inputs, targets, h0 = problem(size, np.float32, False, seed=sum(size))
    loss_and_gradients = jax.jit(
        jax.value_and_grad(
            lambda params, inputs, h0: bptt.jax.loss(params, inputs, targets, h0=h0),
            argnums=(0, 1, 2),
        )
    )

    def value_and_gradients():
        loss, (d_params, d_inputs, d_h0) = loss_and_gradients(params, inputs, h0)
        return [loss, *(d_params[name] for name in sorted(d_params)), d_inputs, d_h0]

    at_each_thread_count(value_and_gradients)
