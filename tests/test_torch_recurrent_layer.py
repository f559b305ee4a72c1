"""The autograd operation under bptt.torch.RNN, one direction of one layer, judged by finite
differences (torch.autograd.gradcheck, float64): forwards and backwards in time, with and
without per-sequence lengths, and with only some of its inputs needing a gradient."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bptt.torch.recurrent_layer import recurrent_layer

T, B, D, H = 5, 3, 2, 4


def layer_inputs(requires_grad=True):
    generator = torch.Generator().manual_seed(0)

    def draw(*shape, scale=1.0):
        tensor = scale * torch.randn(*shape, generator=generator, dtype=torch.float64)
        return tensor.requires_grad_(requires_grad)

    # weights of size 1/sqrt(H) keep tanh away from saturation, where differences lose digits
    return draw(T, B, D), draw(B, H), draw(H, D, scale=0.5), draw(H, H, scale=0.5), draw(H)


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("lengths", [None, np.array([5, 2, 1])], ids=["full", "lengths"])
def test_gradients_of_hidden_and_h_n_equal_finite_differences(reverse, lengths):
    def layer(*tensors):
        return recurrent_layer(*tensors, activation="tanh", lengths=lengths, reverse=reverse)

    assert torch.autograd.gradcheck(layer, layer_inputs())


def test_h_n_alone_and_the_hidden_states_alone_each_get_their_gradient():
    def h_n_only(*tensors):
        return recurrent_layer(*tensors, activation="tanh")[1]

    def hidden_only(*tensors):
        return recurrent_layer(*tensors, activation="tanh", lengths=np.array([5, 2, 1]))[0]

    assert torch.autograd.gradcheck(h_n_only, layer_inputs())
    assert torch.autograd.gradcheck(hidden_only, layer_inputs())


def test_inputs_without_requires_grad_get_no_gradient():
    inputs, h0, weight_ih, weight_hh, bias = layer_inputs(requires_grad=False)
    weight_hh.requires_grad_()
    hidden, h_n = recurrent_layer(inputs, h0, weight_ih, weight_hh, bias, activation="relu")
    (hidden.sum() + h_n.sum()).backward()
    assert weight_hh.grad is not None
    assert all(t.grad is None for t in (inputs, h0, weight_ih, bias))


def test_no_initial_state_means_zeros():
    inputs, h0, weight_ih, weight_hh, bias = layer_inputs(requires_grad=False)
    without = recurrent_layer(inputs, None, weight_ih, weight_hh, bias, activation="tanh")
    zeros = recurrent_layer(inputs, 0 * h0, weight_ih, weight_hh, bias, activation="tanh")
    torch.testing.assert_close(without, zeros, rtol=0, atol=0)
