"""Unbatched inputs, (T, D) vectors or (T,) token ids, give bitwise the results of a batch of one
without its batch axis, in every public function."""

import numpy as np
import pytest
from random_problems import MEDIUM, PARAM_NAMES, Problem, make_problem, run, run_forward

import bptt


@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
def test_unbatched_inputs_give_the_batch_of_one_results_without_the_batch_axis(
    tokens, soft, with_h0
):
    sizes = dict(MEDIUM, B=1)
    batched = make_problem(11, **sizes, tokens=tokens, soft=soft, h0=with_h0)
    unbatched = Problem(
        batched.params,
        batched.inputs[:, 0],
        batched.targets[:, 0],
        None if batched.h0 is None else batched.h0[0],
    )
    assert unbatched.inputs.ndim == (1 if tokens else 2)

    lg_b, lg_u = run(batched), run(unbatched)
    fwd_b, fwd_u = run_forward(batched), run_forward(unbatched)

    assert lg_u.loss == lg_b.loss
    assert np.array_equal(lg_u.h_last, lg_b.h_last[0])
    assert lg_u.grads.keys() == lg_b.grads.keys()
    for name in PARAM_NAMES:
        assert np.array_equal(lg_u.grads[name], lg_b.grads[name]), name
    assert np.array_equal(lg_u.grads["h0"], lg_b.grads["h0"][0])
    if not tokens:
        assert np.array_equal(lg_u.grads["x"], lg_b.grads["x"][:, 0])
    assert np.array_equal(fwd_u.hidden, fwd_b.hidden[:, 0])
    assert np.array_equal(fwd_u.logits, fwd_b.logits[:, 0])
    assert np.array_equal(fwd_u.h_last, fwd_b.h_last[0])


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("with_h0", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("tokens", [False, True], ids=["float", "tokens"])
def test_the_unbatched_layer_gives_the_batch_of_one_results_without_the_batch_axis(
    tokens, with_h0, reverse
):
    batched = make_problem(12, **dict(MEDIUM, B=1), tokens=tokens, h0=with_h0)
    rng = np.random.default_rng(12)
    d_hidden = rng.standard_normal((MEDIUM["T"], 1, MEDIUM["H"]))
    d_h_last = rng.standard_normal((1, MEDIUM["H"]))
    params, inputs, h0 = batched.params, batched.inputs, batched.h0
    h0_alone = None if h0 is None else h0[0]

    layer_b = bptt.layer_forward(params, inputs, h0=h0, reverse=reverse)
    layer_u = bptt.layer_forward(params, inputs[:, 0], h0=h0_alone, reverse=reverse)
    grads_b = bptt.layer_backward(
        params, inputs, layer_b.hidden, h0=h0, d_hidden=d_hidden, d_h_last=d_h_last, reverse=reverse
    )
    grads_u = bptt.layer_backward(
        params,
        inputs[:, 0],
        layer_u.hidden,
        h0=h0_alone,
        d_hidden=d_hidden[:, 0],
        d_h_last=d_h_last[0],
        reverse=reverse,
    )

    assert np.array_equal(layer_u.hidden, layer_b.hidden[:, 0])
    assert np.array_equal(layer_u.h_last, layer_b.h_last[0])
    assert grads_u.keys() == grads_b.keys()
    for name in ("U", "W", "b"):
        assert np.array_equal(grads_u[name], grads_b[name]), name
    assert np.array_equal(grads_u["h0"], grads_b["h0"][0])
    if not tokens:
        assert np.array_equal(grads_u["x"], grads_b["x"][:, 0])


@pytest.mark.parametrize("soft", [False, True], ids=["ids", "soft"])
def test_the_unbatched_head_gives_the_batch_of_one_results_without_the_batch_axis(soft):
    batched = make_problem(13, **dict(MEDIUM, B=1), soft=soft)
    hidden = np.random.default_rng(13).uniform(-1, 1, (MEDIUM["T"], 1, MEDIUM["H"]))
    params, targets = batched.params, batched.targets

    logits_b, logits_u = bptt.head_logits(params, hidden), bptt.head_logits(params, hidden[:, 0])
    head_b = bptt.head_loss_and_grad(params, hidden, targets)
    head_u = bptt.head_loss_and_grad(params, hidden[:, 0], targets[:, 0])

    assert np.array_equal(logits_u, logits_b[:, 0])
    assert head_u.loss == head_b.loss
    assert head_u.grads.keys() == head_b.grads.keys()
    for name, grad in head_b.grads.items():
        assert np.array_equal(head_u.grads[name], grad), name
    assert np.array_equal(head_u.d_hidden, head_b.d_hidden[:, 0])
