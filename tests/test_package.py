"""The package itself: what it exports, its version, its build information, and the backends
that load on first use only."""

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

import bptt


def test_build_info_names_the_instruction_set_eigen_compiler_and_threads():
    info = bptt.build_info()

    for key in (
        "instruction_set",
        "available_instruction_sets",
        "eigen_version",
        "compiler",
        "num_threads",
    ):
        assert key in info, key
    assert info["instruction_set"] in info["available_instruction_sets"]
    assert info["eigen_version"].startswith("3.4")
    assert isinstance(info["compiler"], str)
    assert info["compiler"]
    assert info["num_threads"] == bptt.get_num_threads()


def test_the_torch_backend_loads_on_first_use_only():
    # A child process, so that no other test has imported torch already.
    pytest.importorskip("torch")
    code = (
        "import sys, bptt; assert 'torch' not in sys.modules; "
        "bptt.torch.RNN; assert 'torch' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_every_name_in_all_is_exported_and_the_core_stays_private():
    for name in bptt.__all__:
        assert hasattr(bptt, name), name
    assert not any(name.startswith("_") for name in bptt.__all__)
    for name in ("layer_forward", "layer_backward", "head_logits", "head_loss_and_grad"):
        assert name in bptt.__all__, name
        assert getattr(bptt, name).__module__ != "bptt._core", name


def test_the_version_is_written_once_in_pyproject_and_read_from_the_distribution():
    pyproject = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    written = re.search(r'^version = "(.+)"$', pyproject, re.MULTILINE).group(1)
    try:
        installed = importlib.metadata.version("bptt")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        assert bptt.__version__ == "0+unknown"
    else:
        assert bptt.__version__ == installed == written
