"""The NumPy oracle, bptt.reference.loss_and_grad: plain loops over t, NumPy's BLAS inside, its
threads limited with threadpoolctl (and OPENBLAS_NUM_THREADS, set by compare.py's child)."""

import numpy as np

import bptt
from peers import LossAndGradRunner

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


class Runner(LossAndGradRunner):
    def __init__(self, problem):
        super().__init__(bptt.reference.loss_and_grad, problem)
