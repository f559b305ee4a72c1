"""The same call gives bitwise the same results, every time and from either function."""

import numpy as np
import pytest
from random_problems import (
    ACTIVATIONS,
    DTYPES,
    MEDIUM,
    all_arrays,
    assert_bitwise_equal,
    make_problem,
    run,
    run_forward,
)


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "sizes",
    [MEDIUM, {"T": 7, "B": 3, "D": 5, "H": 6, "O": 4}, {"T": 3, "B": 2, "D": 4, "H": 5, "O": 3}],
    ids=["medium", "small", "tiny"],
)
def test_repeated_calls_give_bitwise_equal_results(sizes, dtype, soft):
    problem = make_problem(5, **sizes, dtype=dtype, soft=soft)
    first = all_arrays(run(problem), run_forward(problem))

    # Earlier results are kept alive, so every call writes into freshly allocated outputs.
    kept = [all_arrays(run(problem), run_forward(problem)) for _ in range(32)]

    for arrays in kept:
        assert_bitwise_equal(arrays, first)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_repeated_forward_calls_give_bitwise_equal_hidden_states_for_every_activation(
    activation, dtype
):
    problem = make_problem(5, **MEDIUM, dtype=dtype)
    first = run_forward(problem, activation=activation)

    # Earlier results are kept alive, so every call writes into freshly allocated outputs.
    kept = [run_forward(problem, activation=activation) for _ in range(32)]

    for out in kept:
        assert np.array_equal(out.hidden, first.hidden)
        assert np.array_equal(out.logits, first.logits)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_forward_and_loss_and_grad_give_bitwise_the_same_h_last(activation, dtype):
    problem = make_problem(5, **MEDIUM, dtype=dtype)

    outs = [run_forward(problem, activation=activation) for _ in range(32)]
    results = [run(problem, activation=activation) for _ in range(32)]

    for out, result in zip(outs, results, strict=True):
        assert np.array_equal(out.h_last, result.h_last)
