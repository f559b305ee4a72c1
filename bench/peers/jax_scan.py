"""JAX: jit(value_and_grad) of a lax.scan over the steps, the input projection hoisted out of the
scan as one product (for token ids, a row gather of Uᵀ: the embedding-equivalent, whose gradient
XLA computes as a scatter-add), the output product and log-softmax over the whole sequence.

XLA's CPU thread count is fixed when its client is created: see set_threads."""

import contextlib
import os
from pathlib import Path

import numpy as np

from bptt._model import PARAM_NAMES
from peers import not_installed

NAME = "JAX jit"


def unavailable() -> str:
    return not_installed("jax")


def versions() -> dict:
    import jax
    import jaxlib

    return {
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "xla_pool_threads": xla_pool_threads(),
    }


def set_threads(n: int) -> None:
    """XLA sizes its intra-op thread pool from the CPUs the process may run on when the CPU client
    is created (XLA_FLAGS=--xla_cpu_multi_thread_eigen=false alone still leaves jax 0.10 one
    pool thread per core): so create the client while this thread may run on n CPUs only, then
    give every thread created meanwhile all the CPUs back. A no-op once jax has its client."""
    import jax

    cpus = os.sched_getaffinity(0)
    if n >= len(cpus):
        jax.devices()
        return
    before = set(os.listdir("/proc/self/task"))
    os.sched_setaffinity(0, sorted(cpus)[:n])
    try:
        jax.devices()  # creates the CPU client and its thread pool
    finally:
        created = set(os.listdir("/proc/self/task")) - before
        for tid in [0, *map(int, created)]:
            with contextlib.suppress(OSError):  # a thread that has ended meanwhile
                os.sched_setaffinity(tid, cpus)


def xla_pool_threads() -> int:
    """Threads of XLA's intra-op pool (named tf_XLAEigen) in this process."""
    count = 0
    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):
            count += Path(f"/proc/self/task/{tid}/comm").read_text().startswith("tf_XLAEigen")
    return count


def sequence_loss(U, W, b, V, c, h0, inputs, targets, tokens):
    """(h_T, L) of the sequence from h0."""
    import jax
    import jax.numpy as jnp

    # a_t = b + U x_t for every t at once; then h_t = tanh(a_t + W h_{t-1}) step by step.
    a_in = (U.T[inputs] if tokens else inputs @ U.T) + b

    def step(h, a):
        h = jnp.tanh(a + h @ W.T)
        return h, h

    h_last, hidden = jax.lax.scan(step, h0, a_in)
    log_probs = jax.nn.log_softmax(hidden @ V.T + c, axis=-1)
    return h_last, -jnp.sum(jnp.take_along_axis(log_probs, targets[..., None], axis=-1))


class Runner:
    NAMES = (*PARAM_NAMES, "h0", "x")

    def __init__(self, problem):
        import jax
        import jax.numpy as jnp

        _, B, _, H, _ = problem.shape
        p = problem.params
        self.tokens = problem.tokens
        self.args = [jnp.asarray(p[name]) for name in PARAM_NAMES]
        self.args.append(jnp.zeros((B, H), jnp.float32))
        self.args.append(
            jnp.asarray(problem.inputs.astype(np.int32) if self.tokens else problem.inputs)
        )
        self.args.append(jnp.asarray(problem.targets.astype(np.int32)))
        argnums = tuple(range(6 if self.tokens else 7))  # x's gradient only for float inputs

        self.step = jax.jit(jax.value_and_grad(self.loss, argnums=argnums))
        self.block = jax.block_until_ready
        self.last = None

    def loss(self, *args):
        """L of (U, W, b, V, c, h0, inputs, targets), the function differentiated."""
        return sequence_loss(*args, tokens=self.tokens)[1]

    def __call__(self):
        self.last = self.block(self.step(*self.args))

    def release(self):
        self.last = None

    def output_bytes(self):
        loss, grads = self.last
        return loss.nbytes + sum(g.nbytes for g in grads)

    def result(self):
        loss, grads = self.last
        return float(loss), {
            name: np.asarray(g) for name, g in zip(self.NAMES, grads, strict=False)
        }
