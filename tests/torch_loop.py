"""The `bptt train` step in PyTorch eager: nn.RNN (one-hot inputs, one layer or a stack) +
nn.Linear + cross-entropy + clip_grad_norm_ + torch.optim, on the same streams. The judge of the trainer in the parity tests
and its peer in the throughput benchmark (bench/train_throughput.py, which imports it from this
directory); needs torch (the `torch` extra)."""

from collections.abc import Mapping

import numpy as np

from bptt import stack
from bptt.corpus import Streams
from bptt.optimizers import OPTIMIZERS


class TorchLoop:
    """W h_{t-1} + U x_t + b is nn.RNN's weight_hh, weight_ih and bias_ih (layer k's U{k}, W{k},
    b{k} its weight_ih_l{k-1} ...); its second biases (bias_hh) stay zero and frozen, since the
    model (Goodfellow et al., Deep Learning 10.2.2) has one. `lr_at(steps_done)`: the rate of
    each step, when it is not constant."""

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        streams: Streams,
        *,
        optimizer: str,
        lr: float,
        clip: float,
        activation: str = "tanh",
        lr_at=None,
    ):
        import torch

        self.torch = torch
        self.names = tuple(params)  # U W b, U2 W2 b2, ..., V c
        layers = stack.layer_count(params)
        tensors = {name: torch.from_numpy(np.array(params[name])) for name in self.names}
        hidden_size, self.vocabulary_size = tensors["U"].shape
        dtype = tensors["U"].dtype
        self.rnn = torch.nn.RNN(
            self.vocabulary_size, hidden_size, layers, nonlinearity=activation, dtype=dtype
        )
        self.head = torch.nn.Linear(hidden_size, tensors["V"].shape[0], dtype=dtype)
        self.trained = []
        with torch.no_grad():
            for layer in range(1, layers + 1):
                suffix = f"_l{layer - 1}"
                for kind, name in zip(
                    ("weight_ih", "weight_hh", "bias_ih"), stack.layer_names(layer), strict=True
                ):
                    weight = getattr(self.rnn, kind + suffix)
                    weight.copy_(tensors[name])
                    self.trained.append(weight)
                getattr(self.rnn, "bias_hh" + suffix).zero_()
                getattr(self.rnn, "bias_hh" + suffix).requires_grad_(False)
            self.head.weight.copy_(tensors["V"])
            self.head.bias.copy_(tensors["c"])
        self.trained += [self.head.weight, self.head.bias]
        if optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.trained, lr=lr)
        elif optimizer == "adagrad":
            self.optimizer = torch.optim.Adagrad(self.trained, lr=lr)
        elif optimizer == "sgd":
            self.optimizer = torch.optim.SGD(
                self.trained, lr=lr, momentum=OPTIMIZERS["sgd"].default_momentum
            )
        else:
            raise ValueError(f"optimizer: expected adam, adagrad or sgd, got {optimizer!r}")
        self.streams = streams
        self.clip = clip
        self.lr_at = lr_at
        self.steps_done = 0
        self.position = 0
        self.hidden = torch.zeros(layers, streams.batch, hidden_size, dtype=dtype)

    def step(self) -> float:
        """One step on the next chunk of every stream; the mean cross-entropy in nats."""
        torch = self.torch
        inputs, targets = self.streams.chunk(self.position)
        one_hot = torch.nn.functional.one_hot(torch.from_numpy(inputs), self.vocabulary_size).to(
            self.hidden.dtype
        )
        hidden, h_last = self.rnn(one_hot, self.hidden)
        logits = self.head(hidden)
        loss = torch.nn.functional.cross_entropy(
            logits.reshape(-1, self.vocabulary_size), torch.from_numpy(targets).reshape(-1)
        )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.trained, self.clip)
        if self.lr_at is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = self.lr_at(self.steps_done)
        self.optimizer.step()
        self.steps_done += 1
        self.position = self.streams.next_position(self.position)
        # as the trainer: a new epoch starts every stream afresh, from a zero state
        self.hidden = h_last.detach() if self.position else torch.zeros_like(self.hidden)
        return float(loss.detach())

    def params(self) -> dict[str, np.ndarray]:
        arrays = [tensor.detach().numpy().copy() for tensor in self.trained]
        return dict(zip(self.names, arrays, strict=True))
