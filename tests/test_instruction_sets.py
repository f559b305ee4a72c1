"""The kernels built for each instruction set: the best one the CPU supports is chosen, every
one gives the same numbers, and none runs an instruction its CPU lacks (proved under qemu-user,
which raises SIGILL for any instruction the emulated CPU model does not have)."""

import os
import platform
import shutil
import subprocess
import sys

import closeness
import numpy as np
import pytest

import bptt
from bptt._model import ACTIVATIONS, PARAM_NAMES

STEPS = 7

# Runs in a child process, on the CPU under test: bptt only, no matrix product of NumPy's (its
# BLAS may be told to use kernels of another CPU, see below). Saves the problems and the core's
# results to argv[1], which the parent checks against the oracle.
CHILD = f"""
import sys, numpy as np, bptt
rng = np.random.default_rng(0)
info = bptt.build_info()
saved = {{
    "instruction_set": np.array(info["instruction_set"]),
    "float64_instruction_set": np.array(info["float64_instruction_set"]),
}}
for dtype in (np.float32, np.float64):
    params = bptt.init_params(5, 6, 4, dtype=dtype, seed=0)
    saved.update({{f"{{np.dtype(dtype).name}}/params/{{k}}": v for k, v in params.items()}})
    targets = rng.integers(-1, 4, size=({STEPS}, 3))
    for kind, inputs in (
        ("tokens", rng.integers(0, 5, size=({STEPS}, 3))),
        ("dense", rng.standard_normal(({STEPS}, 3, 5)).astype(dtype)),
    ):
        for activation in {ACTIVATIONS!r}:
            key = f"{{np.dtype(dtype).name}}/{{kind}}/{{activation}}"
            core = bptt.loss_and_grad(params, inputs, targets, activation=activation)
            saved[key + "/inputs"], saved[key + "/targets"] = inputs, targets
            saved.update({{f"{{key}}/grads/{{k}}": v for k, v in core.grads.items()}})
np.savez(sys.argv[1], **saved)
"""


def run_child(tmp_path, *prefix: str, instruction_set: str | None = None):
    env = dict(os.environ)
    env.pop("BPTT_INSTRUCTION_SET", None)
    if instruction_set:
        env["BPTT_INSTRUCTION_SET"] = instruction_set
    out = tmp_path / "core.npz"
    result = subprocess.run(
        [*prefix, sys.executable, "-c", CHILD, str(out)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return result, out


def assert_child_matches_the_oracle(saved) -> None:
    """Every gradient the child's core computed against the oracle, computed here."""
    for dtype in ("float32", "float64"):
        params = {k: saved[f"{dtype}/params/{k}"] for k in PARAM_NAMES}
        for kind in ("tokens", "dense"):
            for activation in ACTIVATIONS:
                key = f"{dtype}/{kind}/{activation}"
                oracle = bptt.reference.loss_and_grad(
                    params, saved[f"{key}/inputs"], saved[f"{key}/targets"], activation=activation
                )
                for name, truth in oracle.grads.items():
                    core = saved[f"{key}/grads/{name}"]
                    closeness.assert_close(
                        core, truth, dtype=dtype, terms=STEPS + 1, name=f"{key} d{name}"
                    )


AVAILABLE = bptt.build_info()["available_instruction_sets"]


def float64_set_of(instruction_set: str) -> str:
    """AVX-512 leaves float64 to the AVX2 kernels, where the build has them (a development
    build for AVX-512 alone keeps its own)."""
    return "avx2" if instruction_set == "avx512" and "avx2" in AVAILABLE else instruction_set


def test_the_best_available_instruction_set_is_chosen():
    info = bptt.build_info()
    assert info["available_instruction_sets"][0] == "baseline"
    if "BPTT_INSTRUCTION_SET" not in os.environ:
        assert info["instruction_set"] == info["available_instruction_sets"][-1]
    assert info["float64_instruction_set"] == float64_set_of(info["instruction_set"])


@pytest.mark.parametrize("instruction_set", AVAILABLE)
def test_every_available_instruction_set_matches_the_oracle(instruction_set, tmp_path):
    result, out = run_child(tmp_path, instruction_set=instruction_set)
    assert result.returncode == 0, result.stderr
    with np.load(out) as saved:
        assert str(saved["instruction_set"]) == instruction_set
        assert str(saved["float64_instruction_set"]) == float64_set_of(instruction_set)
        assert_child_matches_the_oracle(saved)


def test_an_unavailable_instruction_set_is_a_clear_import_error(tmp_path):
    result, _ = run_child(tmp_path, instruction_set="no-such-set")
    assert result.returncode != 0
    assert "BPTT_INSTRUCTION_SET: expected one of" in result.stderr


qemu = shutil.which("qemu-x86_64")


@pytest.mark.skipif(
    qemu is None or platform.machine() != "x86_64", reason="needs qemu-user on x86-64"
)
@pytest.mark.parametrize(
    ("cpu_model", "expected"),
    [
        ("Nehalem", "baseline"),  # SSE4.2, no AVX
        ("SandyBridge", "baseline"),  # AVX, no AVX2 or FMA
        ("max,-bmi2", "baseline"),  # x86-64-v3 but for one feature
        ("Haswell", "avx2"),  # x86-64-v3, no AVX-512
    ],
)
def test_an_older_cpu_gets_kernels_it_can_run(cpu_model, expected, tmp_path):
    # NumPy must import there: OPENBLAS_CORETYPE, which some machines set, makes its BLAS start
    # with that CPU's kernels whatever the CPU, which an older emulated CPU may lack.
    numpy_alone = subprocess.run(
        [qemu, "-cpu", cpu_model, sys.executable, "-c", "import numpy"],
        check=False,
        capture_output=True,
        timeout=300,
    )
    if numpy_alone.returncode != 0:
        pytest.skip(
            f"NumPy cannot start on {cpu_model} here "
            f"(OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')!r})"
        )
    result, out = run_child(tmp_path, qemu, "-cpu", cpu_model)
    assert result.returncode == 0, result.stderr[-2000:]
    with np.load(out) as saved:
        assert str(saved["instruction_set"]) == expected
        assert str(saved["float64_instruction_set"]) == expected
        assert_child_matches_the_oracle(saved)
