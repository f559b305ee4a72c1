"""The subject: bptt.loss_and_grad on the problem as given (float inputs or token ids)."""

import bptt

NAME = "bptt"


def unavailable() -> str:
    return ""


def versions() -> dict:
    return {"bptt": bptt.__version__, **bptt.build_info()}


def set_threads(n: int) -> None:
    bptt.set_num_threads(n)


class Runner:
    def __init__(self, problem):
        self.args = (problem.params, problem.inputs, problem.targets)
        self.last = None

    def __call__(self):
        self.last = bptt.loss_and_grad(*self.args)

    def release(self):
        self.last = None

    def release_kept_memory(self):
        """The scratch the core keeps between calls, so that a memory measurement counts it."""
        bptt.release_scratch()

    def result(self):
        return self.last.loss, dict(self.last.grads)
