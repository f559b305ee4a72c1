"""oneDNN's vanilla RNN primitive, a peer of bptt's recurrent layer alone (it has no softmax
head): forward_training, then backward, tanh, float32, one layer, left to right, GNU OpenMP.

The C++ beside this file (onednn_rnn.cpp) is compiled on first use, with g++ (or $CXX), against
the headers and libdnnl of the pip packages onednn-devel-cpu-gomp and onednn-cpu-gomp, into a
cache under the repository's build/ (a temporary folder when that is not writable), and loaded
with ctypes. A call runs both primitives on the runner's arrays in place; the weights were
reordered to the primitives' layouts once, when the runner was made."""

import ctypes
import functools
import hashlib
import importlib.metadata
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

NAME = "oneDNN RNN"
RUNTIME, HEADERS = "onednn-cpu-gomp", "onednn-devel-cpu-gomp"
SOURCE = Path(__file__).with_suffix(".cpp")
CACHE = Path(__file__).resolve().parents[2] / "build" / "onednn-peer"
FLAGS = ["-O2", "-std=c++17", "-shared", "-fPIC", "-fopenmp"]
ERROR_SIZE = 2048


def package_file(distribution: str, name: str) -> Path | None:
    """The installed file of a distribution whose path ends with `name`, None without it."""
    try:
        files = importlib.metadata.distribution(distribution).files or []
    except importlib.metadata.PackageNotFoundError:
        return None
    found = [f for f in files if f.as_posix().endswith(name)]
    return Path(found[0].locate()).resolve() if found else None


def installation() -> tuple[Path | None, Path | None]:
    """The folder holding oneapi/dnnl/dnnl.hpp, and libdnnl.so; None for what is missing."""
    header = package_file(HEADERS, "include/oneapi/dnnl/dnnl.hpp")
    return (header.parents[2] if header else None), package_file(RUNTIME, "libdnnl.so")


def compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "g++"))


def unavailable() -> str:
    include, library_file = installation()
    if include is None or library_file is None:
        return f"oneDNN is not installed (pip install '.[bench]': {RUNTIME}, {HEADERS})"
    if compiler() is None:
        return f"no C++ compiler ({os.environ.get('CXX', 'g++')}, from $CXX) to build the peer"
    return ""


def build() -> Path:
    """The compiled peer, from the cache when the source, compiler and oneDNN are unchanged."""
    include, library_file = installation()
    command = [
        compiler(),
        *FLAGS,
        f"-I{include}",
        str(SOURCE),
        f"-L{library_file.parent}",
        "-ldnnl",
        f"-Wl,-rpath,{library_file.parent}",
    ]
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(command).encode()).hexdigest()[:16]
    for folder in (CACHE, Path(tempfile.gettempdir()) / "bptt-onednn-peer"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            break
    target = folder / f"onednn_rnn-{key}.so"
    if not target.exists():
        # Written aside and renamed: two processes building at once each get a whole file.
        partial = folder / f"{target.name}.{os.getpid()}"
        compiled = subprocess.run(
            [*command, "-o", str(partial)], capture_output=True, text=True, check=False
        )
        if compiled.returncode != 0:
            raise RuntimeError(f"compiling {SOURCE.name} failed:\n{compiled.stderr[-2000:]}")
        os.replace(partial, target)
    return target


@functools.cache
def library() -> ctypes.CDLL:
    lib = ctypes.CDLL(str(build()))
    pointer, size = ctypes.c_void_p, ctypes.c_size_t
    lib.onednn_rnn_version.restype = ctypes.c_char_p
    lib.onednn_rnn_set_threads.argtypes = [ctypes.c_int]
    lib.onednn_rnn_create.restype = pointer
    lib.onednn_rnn_create.argtypes = [*[ctypes.c_long] * 4, *[pointer] * 14, ctypes.c_char_p, size]
    lib.onednn_rnn_run.argtypes = [pointer, ctypes.c_char_p, size]
    lib.onednn_rnn_implementation.argtypes = [pointer]
    lib.onednn_rnn_implementation.restype = ctypes.c_char_p
    lib.onednn_rnn_destroy.argtypes = [pointer]
    return lib


def versions() -> dict:
    lib = library()
    return {
        "onednn": lib.onednn_rnn_version().decode(),
        RUNTIME: importlib.metadata.version(RUNTIME),
        "omp_max_threads": lib.onednn_rnn_get_threads(),
    }


def set_threads(n: int) -> None:
    """OpenMP's thread count for this thread's later parallel regions, oneDNN's among them."""
    library().onednn_rnn_set_threads(n)


class LayerRunner:
    """The primitives on the problem's arrays (the weights in bptt's layout, ldgoi to oneDNN),
    writing the states and the gradients into arrays of their own, kept between calls."""

    GRADIENTS = ("U", "W", "b", "x", "h0")

    def __init__(self, problem):
        self.lib = library()
        T, B, D, H = problem.shape
        self.inputs = [
            np.ascontiguousarray(array, dtype=np.float32)
            for array in (
                problem.U,
                problem.W,
                problem.b,
                problem.inputs,
                problem.h0,
                problem.d_hidden,
                problem.d_h_last,
            )
        ]
        self.hidden = np.zeros((T, B, H), np.float32)
        self.h_last = np.zeros((B, H), np.float32)
        shapes = {"U": (H, D), "W": (H, H), "b": (H,), "x": (T, B, D), "h0": (B, H)}
        self.grads = {name: np.zeros(shapes[name], np.float32) for name in self.GRADIENTS}
        outputs = [self.hidden, self.h_last, *self.grads.values()]
        self.error = ctypes.create_string_buffer(ERROR_SIZE)
        self.handle = self.lib.onednn_rnn_create(
            T,
            B,
            D,
            H,
            *(array.ctypes.data for array in (*self.inputs, *outputs)),
            self.error,
            ERROR_SIZE,
        )
        if not self.handle:
            raise RuntimeError(f"oneDNN: {self.error.value.decode()}")
        self.implementation = self.lib.onednn_rnn_implementation(self.handle).decode()

    def __call__(self):
        if self.lib.onednn_rnn_run(self.handle, self.error, ERROR_SIZE) != 0:
            raise RuntimeError(f"oneDNN: {self.error.value.decode()}")

    def release(self):
        """Nothing: the results live in the runner's arrays."""

    def result(self):
        return self.hidden.copy(), {name: grad.copy() for name, grad in self.grads.items()}

    def __del__(self):
        if getattr(self, "handle", None):
            self.lib.onednn_rnn_destroy(self.handle)
