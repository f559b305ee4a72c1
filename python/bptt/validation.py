"""The validation loss of `bptt train`: the mean cross-entropy of the held-out text in bits per
character, read as parallel streams with the state carried across the chunks it is scored in.
Any model that gives logits from token ids is scored alike (bench/train_quality.py scores
PyTorch's with it)."""

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from bptt import reference
from bptt.corpus import Streams

VALIDATION_CHUNK = 500  # time steps a forward call takes when scoring the validation text

# (token ids (T, B), state or None for the initial one) -> (logits (T, B, O), the next state)
Forward = Callable[[np.ndarray, Any], tuple[np.ndarray, Any]]


def bits_per_character(forward: Forward, ids: np.ndarray, batch: int) -> float:
    """The mean of -log2 ŷ_t[y_t] of predicting ids[1:] from ids[:-1], read as up to `batch`
    streams: the logits from `forward`, their log-softmax the oracle's."""
    batch = min(batch, len(ids) - 1)
    streams = Streams(ids, batch, min(VALIDATION_CHUNK, (len(ids) - 1) // batch))
    state, position, nats = None, 0, 0.0
    while True:
        inputs, targets = streams.chunk(position)
        logits, state = forward(inputs, state)
        log_y_hat = reference._log_softmax(logits)
        picked = np.take_along_axis(log_y_hat, targets[..., None], axis=-1)
        nats -= float(np.sum(picked, dtype=np.float64))
        position = streams.next_position(position)
        if position == 0:
            break
    return nats / (streams.length * streams.batch) / math.log(2)
