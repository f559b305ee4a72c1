"""The machine's description recorded with every run: CPU (model name, family, model, flags),
versions, bptt's build and source state, NumPy's BLAS, the environment that steers the
libraries' threads, the load."""

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import numpy as np

REPOSITORY = Path(__file__).resolve().parents[2]
# Set, they can keep NumPy's OpenBLAS (the oracle and the GEMM limit) off its best kernels.
OPENBLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def blas_info() -> list:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return [{"note": "threadpoolctl is not installed", "numpy_config": numpy_blas_name()}]
    return [
        {k: v for k, v in pool.items() if k != "filepath"} | {"file": Path(pool["filepath"]).name}
        for pool in threadpool_info()
    ]


def numpy_blas_name() -> str:
    with contextlib.suppress(Exception):
        return np.show_config(mode="dicts")["Build Dependencies"]["blas"]["name"]
    return "unknown"


def version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def cpu_info(cpuinfo: str | None = None) -> dict:
    """The first CPU's model name, family, model, stepping and flags from the text of
    /proc/cpuinfo (read when not given; empty where there is none)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields = {}
    for line in cpuinfo.strip().splitlines():
        if not line.strip():
            break  # the first processor's block ends here
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    info = {
        "model_name": fields.get("model name"),
        "family": fields.get("cpu family"),
        "model": fields.get("model"),
        "stepping": fields.get("stepping"),
        "flags": fields.get("flags", "").split(),
    }
    return {key: value for key, value in info.items() if value}


def cpu_model() -> str:
    return cpu_info().get("model_name") or platform.processor() or "unknown"


def source_state() -> dict:
    """The repository's commit and whether the core's sources differ from it (the installed build
    is whatever was last built from the working tree)."""

    def git(*args):
        completed = subprocess.run(
            ["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True, check=False
        )
        return completed.stdout.strip() if completed.returncode == 0 else None

    with contextlib.suppress(OSError):
        commit = git("rev-parse", "--short", "HEAD")
        changed = git("status", "--porcelain", "--", "cpp", "CMakeLists.txt", "python/bptt")
        return {"commit": commit, "core_sources_changed": bool(changed) if commit else None}
    return {"commit": None, "core_sources_changed": None}


def machine_description() -> dict:
    import bptt

    return {
        "cpu_model": cpu_model(),
        "cpu": cpu_info(),
        "logical_cpus": os.cpu_count(),
        "cpus_available": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {
            name: version(name)
            for name in (
                "bptt",
                "numpy",
                "torch",
                "jax",
                "jaxlib",
                "onednn-cpu-gomp",
                "threadpoolctl",
                "matplotlib",
            )
        },
        "bptt_build_info": bptt.build_info(),
        "bptt_source": source_state(),
        "numpy_blas": blas_info(),
        "env": {
            name: os.environ.get(name)
            for name in (
                *OPENBLAS_TUNING,
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "XLA_FLAGS",
                "BPTT_INSTRUCTION_SET",
            )
        },
        "openblas_tuning_set": [name for name in OPENBLAS_TUNING if name in os.environ],
        "load_average_start": os.getloadavg(),
        "niceness": os.nice(0),  # a negative one (root) keeps other processes' noise down
    }
