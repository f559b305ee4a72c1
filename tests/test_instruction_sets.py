"""The kernels built for each instruction set: the best one the CPU supports is chosen, every
one gives the same numbers, and none runs an instruction its CPU lacks (proved under qemu-user,
which raises SIGILL for any instruction the emulated CPU model does not have)."""

import os
import platform
import shutil
import subprocess
import sys

import pytest

import bptt

# Runs in a child process: prints the chosen set, then checks the core against the oracle; the
# tolerances are ~1000 ulps of each dtype, loose for a 7-step problem yet far below any real bug.
CHILD = """
import numpy as np, bptt
print(bptt.build_info()["instruction_set"])
rng = np.random.default_rng(0)
for dtype, tolerance in ((np.float32, 1e-4), (np.float64, 1e-12)):
    params = bptt.init_params(5, 6, 4, dtype=dtype, seed=0)
    targets = rng.integers(-1, 4, size=(7, 3))
    for inputs in (rng.integers(0, 5, size=(7, 3)), rng.standard_normal((7, 3, 5)).astype(dtype)):
        for activation in ("tanh", "sigmoid", "relu", "identity"):
            core = bptt.loss_and_grad(params, inputs, targets, activation=activation)
            oracle = bptt.reference.loss_and_grad(params, inputs, targets, activation=activation)
            for name, truth in oracle.grads.items():
                error = np.max(np.abs(core.grads[name] - truth)) / max(np.max(np.abs(truth)), 1.0)
                assert error < tolerance, (dtype, activation, name, error)
print("ok")
"""


def run_child(*prefix: str, instruction_set: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("BPTT_INSTRUCTION_SET", None)
    if instruction_set:
        env["BPTT_INSTRUCTION_SET"] = instruction_set
    return subprocess.run(
        [*prefix, sys.executable, "-c", CHILD],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_best_available_instruction_set_is_chosen():
    info = bptt.build_info()
    assert info["available_instruction_sets"][0] == "baseline"
    if "BPTT_INSTRUCTION_SET" not in os.environ:
        assert info["instruction_set"] == info["available_instruction_sets"][-1]


@pytest.mark.parametrize("instruction_set", bptt.build_info()["available_instruction_sets"])
def test_every_available_instruction_set_matches_the_oracle(instruction_set):
    result = run_child(instruction_set=instruction_set)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [instruction_set, "ok"]


def test_an_unavailable_instruction_set_is_a_clear_import_error():
    result = run_child(instruction_set="no-such-set")
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
def test_an_older_cpu_gets_kernels_it_can_run(cpu_model, expected):
    result = run_child(qemu, "-cpu", cpu_model)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == [expected, "ok"]
