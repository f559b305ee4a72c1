"""The implementations the comparison times, one module each, all behind one small interface:

    NAME                     label in tables
    unavailable() -> str     why it cannot run here ("" when it can); checked before importing it
    versions() -> dict       library versions for the machine description
    set_threads(n)           the library's own thread control, called once per process
    Runner(problem)          prepared on a problem: inputs converted, weights copied from bptt's
        runner()             one forward+backward (loss and every gradient), blocking until done
        runner.result()      (loss, {U, W, b, V, c, h0[, x]} as float32 NumPy) of the last call
        runner.release()     drops the last call's result (before a memory measurement)
        runner.output_bytes() the bytes of the arrays the last call returned (its gradients)

Every peer computes the same gradients bptt returns (h0 and, for float inputs, x included), so
the work compared is the same.

A layer peer (LAYER_PEERS) computes the recurrent layer alone, without the softmax head, and
offers instead of Runner:

    LayerRunner(layer_problem)   prepared on comparison.problem.LayerProblem (float inputs)
        runner()                 forward (the states) + backward from the problem's dL/dh_t and
                                 dL/dh_T, every gradient, blocking until done
        runner.result()          (hidden states (T, B, H), {U, W, b, h0, x}) of the last call

bptt's module offers both, the subject of both comparisons; its Runner also takes a
memory_budget. The peers run under a memory budget the way their users fit one, with activation
checkpointing over segments of the sequence (CHECKPOINTED, load_checkpointed):

    Runner(problem, segment)     the same forward+backward, each `segment` steps checkpointed
"""

import importlib
import importlib.util
from types import ModuleType

# The first is the subject; the others are its peers, in table order: those of the loss with
# its softmax head, then those of the recurrent layer alone.
SUBJECT = "bptt"
PEERS = ("oracle", "torch", "jax")
LAYER_PEERS = ("onednn",)
_MODULES = {
    "bptt": "bptt_core",
    "oracle": "numpy_oracle",
    "torch": "torch_eager",
    "jax": "jax_scan",
    "onednn": "onednn_rnn",
}


# The peers' checkpointed forms, by the name of the peer they checkpoint.
CHECKPOINTED = {"torch": "torch_checkpoint", "jax": "jax_checkpoint"}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"peers.{_MODULES[name]}")


def load_checkpointed(name: str) -> ModuleType:
    """The module of the peer `name` (torch, jax) with activation checkpointing."""
    return importlib.import_module(f"peers.{CHECKPOINTED[name]}")


def load_note(name: str) -> str:
    """Why the implementation cannot run here, "" when it can (without importing its library)."""
    return load(name).unavailable()


def not_installed(library: str) -> str:
    """A peer's unavailable() for its library: why it cannot run, "" when it is installed."""
    if importlib.util.find_spec(library) is None:
        return f"{library} is not installed (pip install '.[bench]')"
    return ""


class LossAndGradRunner:
    """A Runner for a loss_and_grad(params, inputs, targets) of bptt's NumPy API, returning the
    loss and the gradients by name (bptt's and the oracle's)."""

    def __init__(self, loss_and_grad, problem):
        self.loss_and_grad = loss_and_grad
        self.args = (problem.params, problem.inputs, problem.targets)
        self.last = None

    def __call__(self):
        self.last = self.loss_and_grad(*self.args)

    def release(self):
        self.last = None

    def result(self):
        return self.last.loss, dict(self.last.grads)

    def output_bytes(self):
        return sum(g.nbytes for g in self.last.grads.values()) + self.last.h_last.nbytes
