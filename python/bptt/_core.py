"""The compiled kernels for the best instruction set this CPU supports.

Each instruction set has its own extension module, ``_kernels_<set>``, built from the same
sources; importing only the chosen one keeps code for a wider set from ever running on a CPU
without it. ``BPTT_INSTRUCTION_SET`` (baseline, avx2, avx512) overrides the choice.
"""

import importlib
import importlib.util
import os

from bptt import _cpu_features


def _built_instruction_sets() -> list[str]:
    """Instruction sets that this CPU supports and this installation has kernels for, best last."""
    return [
        name
        for name in _cpu_features.supported_instruction_sets()
        if importlib.util.find_spec(f"bptt._kernels_{name}") is not None
    ]


def _choose(available: list[str]) -> str:
    requested = os.environ.get("BPTT_INSTRUCTION_SET")
    if not requested:
        return available[-1]
    if requested not in available:
        raise ImportError(
            f"BPTT_INSTRUCTION_SET: expected one of {', '.join(available)} "
            f"(supported by this CPU and built), got {requested!r}"
        )
    return requested


AVAILABLE_INSTRUCTION_SETS = _built_instruction_sets()
INSTRUCTION_SET = _choose(AVAILABLE_INSTRUCTION_SETS)
_kernels = importlib.import_module(f"bptt._kernels_{INSTRUCTION_SET}")

loss_and_grad = _kernels.loss_and_grad
layer_forward = _kernels.layer_forward
layer_backward = _kernels.layer_backward
head_logits = _kernels.head_logits
head_loss_and_grad = _kernels.head_loss_and_grad
set_num_threads = _kernels.set_num_threads
get_num_threads = _kernels.get_num_threads
release_scratch = _kernels.release_scratch
available_memory_bytes = _kernels.available_memory_bytes
adagrad_step = _kernels.adagrad_step
adam_step = _kernels.adam_step
sgd_momentum_step = _kernels.sgd_momentum_step
TrainingStep = _kernels.TrainingStep


def build_info() -> dict:
    """The chosen instruction set, the available ones, Eigen's version, compiler and threads."""
    info = _kernels.build_info()
    info["available_instruction_sets"] = list(AVAILABLE_INSTRUCTION_SETS)
    return info
