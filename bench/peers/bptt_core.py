"""The subject: bptt.loss_and_grad on the problem as given (float inputs or token ids)."""

import bptt
from peers import LossAndGradRunner

NAME = "bptt"


def unavailable() -> str:
    return ""


def versions() -> dict:
    return {"bptt": bptt.__version__, **bptt.build_info()}


def set_threads(n: int) -> None:
    bptt.set_num_threads(n)


class Runner(LossAndGradRunner):
    def __init__(self, problem):
        super().__init__(bptt.loss_and_grad, problem)

    def release_kept_memory(self):
        """The scratch the core keeps between calls, so that a memory measurement counts it."""
        bptt.release_scratch()
