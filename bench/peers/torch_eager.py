"""PyTorch eager, as a user would write it: torch.nn.RNN(nonlinearity="tanh") + nn.Linear +
F.cross_entropy(reduction="sum"), then .backward().

torch's RNN has two biases (b_ih + b_hh); b_ih holds bptt's b and b_hh is zero, so the maths is
the same (it costs one more bias gradient). Token ids go in as one-hot float vectors, since
nn.RNN takes only floats; no input gradient is asked for them, as bptt returns none."""

import numpy as np

from peers import not_installed

NAME = "PyTorch eager"


def unavailable() -> str:
    return not_installed("torch")


def versions() -> dict:
    import torch

    return {
        "torch": torch.__version__,
        "torch_blas": "MKL" if torch.backends.mkl.is_available() else "other",
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_mkldnn": torch.backends.mkldnn.is_available(),
    }


def set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)


class Runner:
    def __init__(self, problem):
        import torch

        self.torch = torch
        _, B, D, H, O = problem.shape
        p = problem.params
        self.rnn = torch.nn.RNN(D, H, nonlinearity="tanh")
        self.head = torch.nn.Linear(H, O)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(torch.from_numpy(p["U"]))
            self.rnn.weight_hh_l0.copy_(torch.from_numpy(p["W"]))
            self.rnn.bias_ih_l0.copy_(torch.from_numpy(p["b"]))
            self.rnn.bias_hh_l0.zero_()
            self.head.weight.copy_(torch.from_numpy(p["V"]))
            self.head.bias.copy_(torch.from_numpy(p["c"]))
        if problem.tokens:
            x = np.eye(D, dtype=np.float32)[problem.inputs]  # one-hot (T, B, D)
            self.inputs = torch.from_numpy(x)
        else:
            self.inputs = torch.from_numpy(problem.inputs).requires_grad_(True)
        self.h0 = torch.zeros(1, B, H, requires_grad=True)
        self.targets = torch.from_numpy(problem.targets.astype(np.int64)).reshape(-1)
        self.leaves = [*self.rnn.parameters(), *self.head.parameters(), self.h0, self.inputs]
        self.O = O
        self.loss = None

    def __call__(self):
        for leaf in self.leaves:
            leaf.grad = None
        hidden, _ = self.rnn(self.inputs, self.h0)
        logits = self.head(hidden)
        loss = self.torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.O), self.targets, reduction="sum"
        )
        loss.backward()
        self.loss = loss

    def release(self):
        for leaf in self.leaves:
            leaf.grad = None
        self.loss = None

    def output_bytes(self):
        return sum(leaf.grad.nbytes for leaf in self.leaves if leaf.grad is not None)

    def result(self):
        def numpy(tensor):
            return tensor.detach().numpy().copy()

        grads = {
            "U": numpy(self.rnn.weight_ih_l0.grad),
            "W": numpy(self.rnn.weight_hh_l0.grad),
            "b": numpy(self.rnn.bias_ih_l0.grad),
            "V": numpy(self.head.weight.grad),
            "c": numpy(self.head.bias.grad),
            "h0": numpy(self.h0.grad[0]),
        }
        if self.inputs.grad is not None:
            grads["x"] = numpy(self.inputs.grad)
        return float(self.loss.detach()), grads
