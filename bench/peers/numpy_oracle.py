"""The NumPy oracle, bptt.reference.loss_and_grad: plain loops over t, NumPy's BLAS inside, its
threads limited with threadpoolctl (and OPENBLAS_NUM_THREADS, set by compare.py's child)."""

import numpy as np

import bptt

NAME = "NumPy oracle"


def unavailable() -> str:
    return ""


def versions() -> dict:
    return {"numpy": np.__version__}


def set_threads(n: int) -> None:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # OPENBLAS_NUM_THREADS, set before NumPy was imported, still holds
        return
    threadpool_limits(limits=n, user_api="blas")  # kept for the life of the process


class Runner:
    def __init__(self, problem):
        self.args = (problem.params, problem.inputs, problem.targets)
        self.last = None

    def __call__(self):
        self.last = bptt.reference.loss_and_grad(*self.args)

    def release(self):
        self.last = None

    def result(self):
        return self.last.loss, dict(self.last.grads)
