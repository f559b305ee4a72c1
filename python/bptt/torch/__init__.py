"""bptt as a drop-in gradient backend for PyTorch (needs the `torch` extra).

- `RNN`: torch.nn.RNN, with each layer's recurrence forwards and backwards computed by bptt's
  core; the same constructor, parameters, initialization, call and numbers.
- `rnn_softmax_loss`: the model's whole loss (Elman RNN + softmax head + cross-entropy) as one
  autograd operation, the fastest path.

float32 and float64 CPU tensors only. The core skips its NaN scan here (check_finite=False), so
non-finite values propagate as they do through torch's own operations. Gradients are first-order
only: differentiating them again (after create_graph=True) raises a RuntimeError.
"""

from bptt.torch.rnn import RNN
from bptt.torch.softmax_loss import rnn_softmax_loss

__all__ = ["RNN", "rnn_softmax_loss"]
