"""The peer comparison (bench/compare.py, the package bench/comparison): its FLOP count against a
hand count, every installed peer computing the same loss and gradients as bptt, so that the
timings compare the same maths; and what it makes of a recorded run (the ratios, the Markdown,
the changes against a previous run, the record's files)."""

import sys
from pathlib import Path

import numpy as np
import pytest

import bptt

# bench/ is a folder of scripts, not a package: its modules import each other by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gemm_limit
import peers
from comparison.problem import Problem, problem_flops


def test_flop_count_of_the_small_size_matches_a_hand_count():
    T, B, D, H, O = 50, 16, 65, 128, 65  # small
    N = T * B
    forward = 2 * N * D * H + T * 2 * B * H * H + 2 * N * H * O
    backward = 2 * O * N * H + 2 * N * O * H + T * 2 * B * H * H + 2 * H * N * H
    dense_only = 2 * H * N * D + 2 * N * H * D  # dU and dx; the token path scatter-adds instead
    assert gemm_limit.flop_count(T, B, D, H, O) == forward + backward + dense_only == 158_515_200
    token_count = forward - 2 * N * D * H + backward  # no input projection: a row gather
    assert gemm_limit.flop_count(T, B, D, H, O, tokens=True) == token_count == 118_579_200
    assert problem_flops("small") == 158_515_200
    assert problem_flops("small-tokens") == 118_579_200


def test_gemm_limit_times_every_product_at_its_shape():
    for product in gemm_limit.products(3, 2, 4, 5, 6):
        call = gemm_limit.product_call(product)
        call()  # shapes that do not chain would raise here


def tiny_problem(tokens: bool) -> Problem:
    T, B, D, H, O = 7, 3, 5, 6, 4
    rng = np.random.default_rng(1)
    params = bptt.init_params(D, H, O, seed=1)
    inputs = (
        rng.integers(0, D, size=(T, B))
        if tokens
        else rng.standard_normal((T, B, D)).astype(np.float32)
    )
    targets = rng.integers(0, O, size=(T, B))
    return Problem("tiny", (T, B, D, H, O), tokens, params, inputs, targets)


@pytest.mark.parametrize("tokens", [False, True], ids=["dense", "tokens"])
@pytest.mark.parametrize("peer", peers.PEERS)
def test_peer_computes_the_loss_and_gradients_of_bptt(peer, tokens):
    module = peers.load(peer)
    if module.unavailable():
        pytest.skip(module.unavailable())
    problem = tiny_problem(tokens)
    subject = peers.load(peers.SUBJECT).Runner(problem)
    subject()
    want_loss, want_grads = subject.result()
    runner = module.Runner(problem)
    runner()
    loss, grads = runner.result()
    # float32 on 7 steps of 3 rows: a few ulps of the largest entry, summed in another order.
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert set(grads) == set(want_grads)
    for name, want in want_grads.items():
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(grads[name], want, rtol=0, atol=1e-5 * scale, err_msg=name)
