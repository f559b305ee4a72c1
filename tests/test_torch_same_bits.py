"""The PyTorch backend gives the same bits at any thread count of the core: bptt.torch.RNN's
output, h_n and every gradient (parameters, input, hx) with layers, both directions, packed
sequences and batch_first, and rnn_softmax_loss's loss, h_last and gradients, at 1, 2, 3, 4 and
7 threads (`bptt.set_num_threads`; torch's own threads stay as they are)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from test_same_bits_any_threads import at_each_thread_count, problem, restore_threads  # noqa: F401
from test_torch_rnn_parity import Config, make_problem, run

import bptt.torch

# The configurations, up to the sizes where the layer splits each step's product across threads
# (2·batch·hidden² of 16 MFLOP and more) and its whole-sequence products across rows.
CONFIGS = {
    "2 layers, bidirectional, packed unsorted, batch_first, split steps": Config(
        num_layers=2, bidirectional=True, batch_first=True, nonlinearity="tanh", bias=True,
        dtype=torch.float32, layout="packed", enforce_sorted=False, with_hx=True,
        steps=40, batch=36, input_size=30, hidden_size=480, seed=1,
    ),
    "2 layers, padded, relu, one thread a step": Config(
        num_layers=2, bidirectional=False, batch_first=False, nonlinearity="relu", bias=True,
        dtype=torch.float32, layout="batched", enforce_sorted=True, with_hx=False,
        steps=120, batch=16, input_size=12, hidden_size=96, seed=2,
    ),
    "bidirectional, packed sorted, float64": Config(
        num_layers=1, bidirectional=True, batch_first=False, nonlinearity="tanh", bias=False,
        dtype=torch.float64, layout="packed", enforce_sorted=True, with_hx=True,
        steps=60, batch=24, input_size=16, hidden_size=224, seed=3,
    ),
    "3 layers, unbatched": Config(
        num_layers=3, bidirectional=False, batch_first=False, nonlinearity="tanh", bias=True,
        dtype=torch.float32, layout="unbatched", enforce_sorted=True, with_hx=True,
        steps=300, batch=1, input_size=8, hidden_size=128, seed=4,
    ),
}  # fmt: skip


def as_arrays(tensors) -> list[np.ndarray]:
    return [tensor.detach().numpy() for tensor in tensors]


@pytest.mark.parametrize("config", CONFIGS.values(), ids=CONFIGS.keys())
def test_rnn_output_h_n_and_every_gradient_are_the_same_bits_on_any_thread_count(config):
    rnn_problem = make_problem(config)

    def outputs_and_gradients():
        torch.manual_seed(config.seed)  # the same initial weights each time
        rnn = bptt.torch.RNN(
            config.input_size,
            config.hidden_size,
            num_layers=config.num_layers,
            nonlinearity=config.nonlinearity,
            bias=config.bias,
            batch_first=config.batch_first,
            bidirectional=config.bidirectional,
            dtype=config.dtype,
        )
        results = run(rnn, config, rnn_problem)
        return as_arrays(results[name] for name in sorted(results))

    at_each_thread_count(outputs_and_gradients)


@pytest.mark.parametrize(
    ("size", "dtype", "tokens"),
    [
        ((60, 16, 20, 192, 24), np.float32, False),  # a step on one thread: two pipeline
        ((30, 64, 64, 256, 64), np.float32, True),  # steps split across threads
        ((25, 1, 65, 100, 65), np.float64, False),  # too short for chunks: stepwise
    ],
    ids=str,
)
def test_rnn_softmax_loss_and_its_gradients_are_the_same_bits_on_any_thread_count(
    size, dtype, tokens
):
    arrays, *others = problem(size, dtype, tokens, seed=sum(size))
    params = {name: torch.from_numpy(value) for name, value in arrays.items()}
    inputs, targets, h0 = (torch.from_numpy(value) for value in others)

    def loss_h_last_and_gradients():
        leaves = {name: value.clone().requires_grad_() for name, value in params.items()}
        leaves["h0"] = h0.clone().requires_grad_()
        if not tokens:
            leaves["x"] = inputs.clone().requires_grad_()
        model = {name: leaves[name] for name in params}
        loss, h_last = bptt.torch.rnn_softmax_loss(
            model, leaves.get("x", inputs), targets, h0=leaves["h0"], reduction="mean",
            return_h_last=True,
        )  # fmt: skip
        loss.backward()
        return as_arrays([loss, h_last, *(leaves[name].grad for name in sorted(leaves))])

    at_each_thread_count(loss_h_last_and_gradients)
