"""The recurrent layer on its own (bptt._core), run backwards in time and over sequences of
different lengths, as bidirectional and packed RNNs need it. The judge is the plain layer: a
batch with lengths must equal each sequence run alone without padding, and a reversed sequence
must equal the plain layer on the time-reversed input."""

import closeness
import numpy as np
import pytest

import bptt
from bptt import _core

# T·B = 320 rows: the batch's backward pass runs chunks of 128, 128 and 64 rows (in the order the
# steps are run) through its ring of two, each sequence alone one chunk.
T, B, D, H = 80, 4, 3, 5
LENGTHS = np.array([80, 2, 0, 47])


def assert_close(actual, expected):
    """float64 sums over the T steps of a few hundred terms, re-associated between the two
    computations: equal to rounding over the T steps."""
    closeness.assert_close(actual, expected, dtype=np.float64, terms=T)


@pytest.fixture
def problem():
    rng = np.random.default_rng(3)
    params = bptt.init_params(D, H, 2, dtype=np.float64, seed=3)
    layer = (params["U"], params["W"], params["b"])
    inputs = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    d_hidden = rng.standard_normal((T, B, H))
    d_h_last = rng.standard_normal((B, H))
    return layer, inputs, h0, d_hidden, d_h_last


def hidden_of(states, reverse):
    return states[:-1] if reverse else states[1:]


def last_state(states, reverse):
    return states[0] if reverse else states[-1]


def run_alone(layer, inputs, h0, d_hidden, d_h_last, reverse):
    """One sequence (T, D) without lengths: its states and gradients."""
    x, h, dh, dh_last = inputs[:, None], h0[None], d_hidden[:, None], d_h_last[None]
    states = _core.layer_forward(*layer, x, h, reverse=reverse)
    grads = _core.layer_backward(
        *layer, x, hidden_of(states, reverse), h0=h, d_hidden=dh, d_h_last=dh_last, reverse=reverse
    )
    return states[:, 0], grads


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
def test_a_padded_batch_equals_each_sequence_run_alone(problem, reverse):
    layer, inputs, h0, d_hidden, d_h_last = problem
    states = _core.layer_forward(*layer, inputs, h0, lengths=LENGTHS, reverse=reverse)
    hidden = hidden_of(states, reverse)
    grads = _core.layer_backward(
        *layer,
        inputs,
        hidden,
        h0=h0,
        d_hidden=d_hidden,
        d_h_last=d_h_last,
        lengths=LENGTHS,
        reverse=reverse,
    )
    summed = {name: np.zeros_like(grads[name]) for name in ("U", "W", "b")}
    for b, length in enumerate(LENGTHS):
        alone_states, alone = run_alone(
            layer, inputs[:length, b], h0[b], d_hidden[:length, b], d_h_last[b], reverse
        )
        assert_close(hidden[:length, b], hidden_of(alone_states, reverse))
        assert_close(last_state(states, reverse)[b], last_state(alone_states, reverse))
        assert_close(grads["h0"][b], alone["h0"][0])
        assert_close(grads["x"][:length, b], alone["x"][:, 0])
        assert not grads["x"][length:, b].any(), "padded inputs get no gradient"
        for name in summed:
            summed[name] += alone[name]
    for name, total in summed.items():
        assert_close(grads[name], total)


def test_padded_positions_keep_the_last_real_state(problem):
    layer, inputs, h0, *_ = problem
    states = _core.layer_forward(*layer, inputs, h0, lengths=LENGTHS)
    for b, length in enumerate(LENGTHS):
        assert np.array_equal(
            states[length:, b], np.broadcast_to(states[length, b], states[length:, b].shape)
        )


def test_reverse_equals_the_plain_layer_on_time_reversed_input(problem):
    layer, inputs, h0, d_hidden, d_h_last = problem
    states = _core.layer_forward(*layer, inputs, h0, reverse=True)
    grads = _core.layer_backward(
        *layer, inputs, states[:-1], h0=h0, d_hidden=d_hidden, d_h_last=d_h_last, reverse=True
    )
    flipped_states = _core.layer_forward(*layer, inputs[::-1], h0)
    flipped = _core.layer_backward(
        *layer, inputs[::-1], flipped_states[1:], h0=h0, d_hidden=d_hidden[::-1], d_h_last=d_h_last
    )
    assert_close(states[::-1], flipped_states)
    assert_close(grads["x"], flipped["x"][::-1])
    for name in ("U", "W", "b", "h0"):
        assert_close(grads[name], flipped[name])


@pytest.mark.parametrize("lengths", [[80, 2, 81, 4], [-1, 2, 0, 4]])
def test_lengths_outside_zero_to_T_are_refused(problem, lengths):
    layer, inputs, *_ = problem
    with pytest.raises(ValueError, match=r"lengths: length -?\d+ of sequence b=\d is out of range"):
        _core.layer_forward(*layer, inputs, lengths=np.array(lengths))


def test_lengths_of_the_wrong_shape_are_refused(problem):
    layer, inputs, *_ = problem
    with pytest.raises(ValueError, match=r"lengths: expected shape \(B,\) = \(4,\)"):
        _core.layer_forward(*layer, inputs, lengths=np.array([1, 2, 3]))
