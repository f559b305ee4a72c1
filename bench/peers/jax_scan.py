"""JAX: jit(value_and_grad) of a lax.scan over the steps, the input projection hoisted out of the
scan as one product (for token ids, a row gather of Uᵀ: the embedding-equivalent, whose gradient
XLA computes as a scatter-add), the output product and log-softmax over the whole sequence.

XLA's CPU thread count is fixed when jax is imported: compare.py's child sets XLA_FLAGS for it."""

import importlib.util

import numpy as np

NAME = "JAX jit"


def unavailable() -> str:
    if importlib.util.find_spec("jax") is None:
        return "jax is not installed (pip install '.[bench]')"
    return ""


def versions() -> dict:
    import jax
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__}


def set_threads(n: int) -> None:
    """Nothing to do at run time: XLA_FLAGS, read at import, decides (see compare.py)."""


def _loss(U, W, b, V, c, h0, inputs, targets, tokens):
    import jax
    import jax.numpy as jnp

    # a_t = b + U x_t for every t at once; then h_t = tanh(a_t + W h_{t-1}) step by step.
    a_in = (U.T[inputs] if tokens else inputs @ U.T) + b

    def step(h, a):
        h = jnp.tanh(a + h @ W.T)
        return h, h

    _, hidden = jax.lax.scan(step, h0, a_in)
    log_probs = jax.nn.log_softmax(hidden @ V.T + c, axis=-1)
    return -jnp.sum(jnp.take_along_axis(log_probs, targets[..., None], axis=-1))


class Runner:
    NAMES = ("U", "W", "b", "V", "c", "h0", "x")

    def __init__(self, problem):
        import jax
        import jax.numpy as jnp

        _, B, _, H, _ = problem.shape
        p = problem.params
        self.tokens = problem.tokens
        self.args = [jnp.asarray(p[name]) for name in "UWbVc"]
        self.args.append(jnp.zeros((B, H), jnp.float32))
        self.args.append(
            jnp.asarray(problem.inputs.astype(np.int32) if self.tokens else problem.inputs)
        )
        self.args.append(jnp.asarray(problem.targets.astype(np.int32)))
        argnums = tuple(range(6 if self.tokens else 7))  # x's gradient only for float inputs

        def loss(*args):
            return _loss(*args, tokens=self.tokens)

        self.step = jax.jit(jax.value_and_grad(loss, argnums=argnums))
        self.block = jax.block_until_ready
        self.last = None

    def __call__(self):
        self.last = self.block(self.step(*self.args))

    def release(self):
        self.last = None

    def result(self):
        loss, grads = self.last
        return float(loss), {
            name: np.asarray(g) for name, g in zip(self.NAMES, grads, strict=False)
        }
