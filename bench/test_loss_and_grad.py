"""pytest-benchmark timings of the core at the standard sizes, with the NumPy oracle as the peer
measured in the same process (`pytest bench/`; compare groups by their medians)."""

import pytest

import bptt

from problems import STANDARD_SIZES, TOKEN_SIZES, make_problem

LOSS_CASES = [(size, False) for size in STANDARD_SIZES] + [(size, True) for size in TOKEN_SIZES]
# The oracle takes seconds at the larger sizes; it is the peer at the others.
ORACLE_SIZES = ["charrnn", "small", "medium"]


@pytest.mark.parametrize(("size", "tokens"), LOSS_CASES)
def test_loss_and_grad(benchmark, size, tokens):
    params, inputs, targets = make_problem(size, tokens)
    benchmark.group = f"loss_and_grad-{size}-{'tokens' if tokens else 'dense'}"
    result = benchmark(bptt.loss_and_grad, params, inputs, targets)
    assert result.loss > 0


@pytest.mark.parametrize("size", list(STANDARD_SIZES))
def test_forward(benchmark, size):
    params, inputs, _ = make_problem(size)
    benchmark.group = f"forward-{size}"
    benchmark(bptt.forward, params, inputs)


@pytest.mark.parametrize("size", ORACLE_SIZES)
def test_oracle_loss_and_grad(benchmark, size):
    params, inputs, targets = make_problem(size)
    benchmark.group = f"loss_and_grad-{size}-dense"
    benchmark(bptt.reference.loss_and_grad, params, inputs, targets)
