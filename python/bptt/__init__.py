"""bptt: exact back-propagation through time for Elman RNNs with a softmax head, on a fast
C++/Eigen core.

    a_t = b + W h_{t-1} + U x_t     h_t = σ(a_t)     o_t = c + V h_t
    ŷ_t = softmax(o_t)              L = - Σ_t y_t · log ŷ_t
"""

# ruff: noqa: RUF002

from bptt import reference
from bptt._api import forward, get_num_threads, loss_and_grad, release_scratch, set_num_threads
from bptt._core import build_info
from bptt._params import init_params
from bptt.reference import ForwardResult, LossAndGrad

__version__ = "0.1.0"

__all__ = [
    "ForwardResult",
    "LossAndGrad",
    "build_info",
    "forward",
    "get_num_threads",
    "init_params",
    "loss_and_grad",
    "reference",
    "release_scratch",
    "set_num_threads",
]


def __getattr__(name: str):
    """bptt.torch and bptt.jax import PyTorch and JAX, so they load on first use only."""
    if name in ("torch", "jax"):
        import importlib

        return importlib.import_module(f"bptt.{name}")
    raise AttributeError(f"module 'bptt' has no attribute {name!r}")
