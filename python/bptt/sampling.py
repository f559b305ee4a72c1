"""Text from a trained model: feed a prime, then draw each next character from
softmax(logits / temperature) and feed it back."""

from collections.abc import Mapping

import numpy as np

from bptt import _api
from bptt.corpus import Vocabulary
from bptt.errors import UsageError


def check_prime(prime: str, vocabulary: Vocabulary) -> None:
    unknown = sorted({character for character in prime if character not in vocabulary})
    if unknown:
        shown = ", ".join(repr(character) for character in unknown[:5])
        raise UsageError(
            f"--prime: {len(unknown)} character(s) not in the model's vocabulary: {shown}"
        )


def generate(
    params: Mapping[str, np.ndarray],
    vocabulary: Vocabulary,
    length: int,
    rng: np.random.Generator,
    *,
    temperature: float = 0.8,
    prime: str = "",
    activation: str = "tanh",
) -> str:
    """`length` characters following `prime` (a newline when empty, if the vocabulary has one);
    the same for the same rng state."""
    check_prime(prime, vocabulary)
    if not prime:
        prime = "\n" if "\n" in vocabulary else vocabulary.characters[rng.integers(len(vocabulary))]
    primed = _api.forward(params, vocabulary.encode(prime), activation=activation)
    state, logits = primed.h_last, primed.logits[-1]
    token = np.empty(1, np.int64)
    ids = np.empty(length, np.int64)
    for i in range(length):
        # softmax(o / temperature) in float64, with the max subtracted so exp stays finite
        scaled = logits.astype(np.float64) / temperature
        probabilities = np.exp(scaled - scaled.max())
        cumulative = np.cumsum(probabilities)
        ids[i] = token[0] = min(
            int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
            len(vocabulary) - 1,
        )
        step = _api.forward(params, token, h0=state, activation=activation)
        state, logits = step.h_last, step.logits[0]
    return vocabulary.decode(ids)
