"""The implementations the comparison times, one module each, all behind one small interface:

    NAME                     label in tables
    unavailable() -> str     why it cannot run here ("" when it can); checked before importing it
    versions() -> dict       library versions for the machine description
    set_threads(n)           the library's own thread control, called once per process
    Runner(problem)          prepared on a problem: inputs converted, weights copied from bptt's
        runner()             one forward+backward (loss and every gradient), blocking until done
        runner.result()      (loss, {U, W, b, V, c, h0[, x]} as float32 NumPy) of the last call
        runner.release()     drops the last call's result (before a memory measurement)

Every peer computes the same gradients bptt returns (h0 and, for float inputs, x included), so
the work compared is the same.
"""

import importlib
from types import ModuleType

# The first is the subject; the others are its peers, in table order.
SUBJECT = "bptt"
PEERS = ("oracle", "torch", "jax")
_MODULES = {
    "bptt": "bptt_core",
    "oracle": "numpy_oracle",
    "torch": "torch_eager",
    "jax": "jax_scan",
}


def load(name: str) -> ModuleType:
    return importlib.import_module(f"peers.{_MODULES[name]}")


def load_note(name: str) -> str:
    """Why the implementation cannot run here, "" when it can (without importing its library)."""
    return load(name).unavailable()
