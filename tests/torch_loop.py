"""The `bptt train` step in PyTorch eager: nn.RNN (one-hot inputs) + nn.Linear + cross-entropy +
clip_grad_norm_ + torch.optim, on the same streams. The judge of the trainer in the parity tests
and its peer in the throughput benchmark (bench/train_throughput.py, which imports it from this
directory); needs torch (the `torch` extra)."""

from collections.abc import Mapping

import numpy as np

from bptt.corpus import Streams
from bptt.optimizers import OPTIMIZERS


class TorchLoop:
    """W h_{t-1} + U x_t + b is nn.RNN's weight_hh, weight_ih and bias_ih; its second bias
    (bias_hh) stays zero and frozen, since the model (Goodfellow et al., Deep Learning 10.2.2)
    has one."""

    def __init__(
        self,
        params: Mapping[str, np.ndarray],
        streams: Streams,
        *,
        optimizer: str,
        lr: float,
        clip: float,
        activation: str = "tanh",
    ):
        import torch

        self.torch = torch
        U, W, b, V, c = (torch.from_numpy(np.array(params[name])) for name in "UWbVc")
        hidden_size, self.vocabulary_size = U.shape
        self.rnn = torch.nn.RNN(
            self.vocabulary_size, hidden_size, nonlinearity=activation, dtype=U.dtype
        )
        self.head = torch.nn.Linear(hidden_size, V.shape[0], dtype=U.dtype)
        with torch.no_grad():
            self.rnn.weight_ih_l0.copy_(U)
            self.rnn.weight_hh_l0.copy_(W)
            self.rnn.bias_ih_l0.copy_(b)
            self.rnn.bias_hh_l0.zero_()
            self.head.weight.copy_(V)
            self.head.bias.copy_(c)
        self.rnn.bias_hh_l0.requires_grad_(False)
        self.trained = [
            self.rnn.weight_ih_l0,
            self.rnn.weight_hh_l0,
            self.rnn.bias_ih_l0,
            self.head.weight,
            self.head.bias,
        ]
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
        self.position = 0
        self.hidden = torch.zeros(1, streams.batch, hidden_size, dtype=U.dtype)

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
        self.optimizer.step()
        self.position = self.streams.next_position(self.position)
        # as the trainer: a new epoch starts every stream afresh, from a zero state
        self.hidden = h_last.detach() if self.position else torch.zeros_like(self.hidden)
        return float(loss.detach())

    def params(self) -> dict[str, np.ndarray]:
        arrays = [tensor.detach().numpy().copy() for tensor in self.trained]
        return dict(zip("UWbVc", arrays, strict=True))
