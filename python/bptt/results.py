"""What the functions return, the same for the fast API (bptt) and the NumPy oracle
(bptt.reference): named tuples of NumPy arrays. Shapes are given batched; an unbatched call
returns them without the B axis."""

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["ForwardResult", "HeadLossAndGrad", "LayerForwardResult", "LossAndGrad"]


class ForwardResult(NamedTuple):
    """The whole model's forward pass: bptt.forward."""

    hidden: NDArray[np.floating]  # (T, B, H): h_1 .. h_T
    logits: NDArray[np.floating]  # (T, B, O): o_1 .. o_T
    h_last: NDArray[np.floating]  # (B, H): h_T, or h_0 when T == 0


class LossAndGrad(NamedTuple):
    """The loss and every gradient: bptt.loss_and_grad."""

    loss: float
    grads: dict[str, NDArray[np.floating]]  # U, W, b, V, c, h0, and x for float inputs
    h_last: NDArray[np.floating]  # (B, H): h_T, or h_0 when T == 0


class LayerForwardResult(NamedTuple):
    """The recurrent layer alone: bptt.layer_forward."""

    hidden: NDArray[np.floating]  # (T, B, H): h_t at t, in either direction
    h_last: NDArray[np.floating]  # (B, H): the state after the last step run, h_0 if none was


class HeadLossAndGrad(NamedTuple):
    """The softmax head's loss alone and its gradients: bptt.head_loss_and_grad."""

    loss: float
    grads: dict[str, NDArray[np.floating]]  # V and c
    d_hidden: NDArray[np.floating]  # (T, B, H): dL/dh_t, the layer's upstream gradient
