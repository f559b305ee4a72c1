"""bptt.torch.RNN against torch.nn.RNN with the same weights, over random configurations:
layers, directions, batch_first, nonlinearity, bias, dtype, batched / unbatched / packed input
(random lengths, sorted or not), hx given or not. The outputs, h_n and the gradients of every
parameter, of the input and of hx must agree to rounding."""

from typing import NamedTuple

import closeness
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import bptt.torch

# The same 60 examples on every run, nothing written to .hypothesis/.
PARITY_SETTINGS = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class Config(NamedTuple):
    num_layers: int
    bidirectional: bool
    batch_first: bool
    nonlinearity: str
    bias: bool
    dtype: torch.dtype
    layout: str  # "batched", "unbatched" or "packed"
    enforce_sorted: bool
    with_hx: bool
    steps: int
    batch: int
    input_size: int
    hidden_size: int
    seed: int


configs = st.builds(
    Config,
    num_layers=st.integers(1, 3),
    bidirectional=st.booleans(),
    batch_first=st.booleans(),
    nonlinearity=st.sampled_from(["tanh", "relu"]),
    bias=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    layout=st.sampled_from(["batched", "unbatched", "packed"]),
    enforce_sorted=st.booleans(),
    with_hx=st.booleans(),
    steps=st.integers(1, 12),
    batch=st.integers(1, 5),
    input_size=st.integers(1, 6),
    hidden_size=st.integers(1, 7),
    seed=st.integers(0, 2**16),
)


def make_problem(config: Config):
    """The input (and for packed input its lengths), hx, and the upstream gradients of the output
    and h_n, all drawn from the config's seed."""
    generator = torch.Generator().manual_seed(config.seed)
    T, B = config.steps, config.batch
    directions = 2 if config.bidirectional else 1
    batch_shape = () if config.layout == "unbatched" else ((B, T) if config.batch_first else (T, B))
    inputs = torch.randn(*batch_shape or (T,), config.input_size, generator=generator)
    lengths = torch.randint(1, T + 1, (B,), generator=generator)
    if config.enforce_sorted:
        lengths = lengths.sort(descending=True).values
    hx_shape = (config.num_layers * directions, *(() if config.layout == "unbatched" else (B,)))
    hx = torch.randn(*hx_shape, config.hidden_size, generator=generator)
    if config.layout == "packed":
        output_rows = int(lengths.sum())
        d_output = torch.randn(output_rows, directions * config.hidden_size, generator=generator)
    else:
        d_output = torch.randn(
            *inputs.shape[:-1], directions * config.hidden_size, generator=generator
        )
    d_h_n = torch.randn(hx.shape, generator=generator)
    as_dtype = {"dtype": config.dtype}
    return (
        inputs.to(**as_dtype),
        lengths,
        hx.to(**as_dtype),
        d_output.to(**as_dtype),
        d_h_n.to(**as_dtype),
    )


def run(rnn, config: Config, problem):
    """Output, h_n and the gradients of input, hx and every parameter, after one backward of
    Σ output · d_output + Σ h_n · d_h_n."""
    inputs, lengths, hx, d_output, d_h_n = problem
    inputs = inputs.clone().requires_grad_()
    hx = hx.clone().requires_grad_() if config.with_hx else None
    if config.layout == "packed":
        packed = pack_padded_sequence(
            inputs, lengths, batch_first=config.batch_first, enforce_sorted=config.enforce_sorted
        )
        output, h_n = rnn(packed, hx)
        assert isinstance(output, PackedSequence)
        for field in ("batch_sizes", "sorted_indices", "unsorted_indices"):
            assert _equal_or_none(getattr(output, field), getattr(packed, field)), field
        output = output.data
    else:
        output, h_n = rnn(inputs, hx)
    ((output * d_output).sum() + (h_n * d_h_n).sum()).backward()
    results = {"output": output, "h_n": h_n, "d_input": inputs.grad}
    if config.with_hx:
        results["d_hx"] = hx.grad
    results |= {f"d_{name}": parameter.grad for name, parameter in rnn.named_parameters()}
    return results


def _equal_or_none(a, b) -> bool:
    return (a is None and b is None) or torch.equal(a, b)


@PARITY_SETTINGS
@given(config=configs)
def test_outputs_h_n_and_every_gradient_match_nn_rnn(config):
    torch.manual_seed(config.seed)
    arguments = {
        "num_layers": config.num_layers,
        "nonlinearity": config.nonlinearity,
        "bias": config.bias,
        "batch_first": config.batch_first,
        "bidirectional": config.bidirectional,
        "dtype": config.dtype,
    }
    reference = torch.nn.RNN(config.input_size, config.hidden_size, **arguments)
    ours = bptt.torch.RNN(config.input_size, config.hidden_size, **arguments)
    ours.load_state_dict(reference.state_dict())
    problem = make_problem(config)

    expected = run(reference, config, problem)
    got = run(ours, config, problem)

    assert got.keys() == expected.keys()
    # Each entry is a sum, in another order than torch's, of products over dot products of at
    # most D + 2H ≈ 30 terms, its roundoff compounding through the recurrence over the T steps.
    for name, value in expected.items():
        assert got[name].dtype == value.dtype, name
        closeness.assert_close(got[name], value, dtype=config.dtype, terms=config.steps, name=name)
