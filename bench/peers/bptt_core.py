"""The subject: bptt.loss_and_grad on the problem as given (float inputs or token ids), under a
memory budget when one is given, and bptt's recurrent layer alone."""

import functools

import bptt
from bptt import _core
from peers import LossAndGradRunner

NAME = "bptt"


def unavailable() -> str:
    return ""


def versions() -> dict:
    return {"bptt": bptt.__version__, **bptt.build_info()}


def set_threads(n: int) -> None:
    bptt.set_num_threads(n)


class Runner(LossAndGradRunner):
    def __init__(self, problem, memory_budget=None):
        super().__init__(
            functools.partial(bptt.loss_and_grad, memory_budget=memory_budget), problem
        )

    def release_kept_memory(self):
        """The scratch the core keeps between calls, so that a memory measurement counts it."""
        bptt.release_scratch()


class LayerRunner:
    """The core's layer_forward, then layer_backward from its states, as bptt's torch and JAX
    layers call them (no finiteness check: the peers do none either)."""

    def __init__(self, problem):
        self.weights_and_inputs = (problem.U, problem.W, problem.b, problem.inputs)
        self.h0, self.d_hidden, self.d_h_last = problem.h0, problem.d_hidden, problem.d_h_last
        self.last = None

    def __call__(self):
        states = _core.layer_forward(*self.weights_and_inputs, self.h0, check_finite=False)
        grads = _core.layer_backward(
            *self.weights_and_inputs,
            states[1:],
            self.h0,
            d_hidden=self.d_hidden,
            d_h_last=self.d_h_last,
            check_finite=False,
        )
        self.last = states[1:], grads

    def release(self):
        self.last = None

    def result(self):
        hidden, grads = self.last
        return hidden, dict(grads)
