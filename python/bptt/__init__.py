"""bptt: exact back-propagation through time for Elman RNNs with a softmax head, on a fast
C++/Eigen core.

    a_t = b + W h_{t-1} + U x_t     h_t = σ(a_t)     o_t = c + V h_t
    ŷ_t = softmax(o_t)              L = - Σ_t y_t · log ŷ_t
"""

# ruff: noqa: RUF002

import importlib
import importlib.metadata
from types import ModuleType

from bptt import reference
from bptt._api import (
    build_info,
    forward,
    get_num_threads,
    loss_and_grad,
    release_scratch,
    set_num_threads,
)
from bptt._layer_and_head import head_logits, head_loss_and_grad, layer_backward, layer_forward
from bptt._params import init_params
from bptt.memory_budget import MemoryPlan, memory_plan
from bptt.results import ForwardResult, HeadLossAndGrad, LayerForwardResult, LossAndGrad

try:  # the version is written once, in pyproject.toml, and installed with the distribution
    __version__ = importlib.metadata.version("bptt")
except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
    __version__ = "0+unknown"

__all__ = [
    "ForwardResult",
    "HeadLossAndGrad",
    "LayerForwardResult",
    "LossAndGrad",
    "MemoryPlan",
    "build_info",
    "forward",
    "get_num_threads",
    "head_logits",
    "head_loss_and_grad",
    "init_params",
    "layer_backward",
    "layer_forward",
    "loss_and_grad",
    "memory_plan",
    "reference",
    "release_scratch",
    "set_num_threads",
]


def __getattr__(name: str) -> ModuleType:
    """bptt.torch and bptt.jax import PyTorch and JAX, so they load on first use only."""
    if name in ("torch", "jax"):
        return importlib.import_module(f"bptt.{name}")
    raise AttributeError(f"module 'bptt' has no attribute {name!r}")
