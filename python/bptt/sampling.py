"""Text from a trained model: feed a prime, then draw each next character from
softmax(logits / temperature) and feed it back."""

from collections.abc import Mapping

import numpy as np

from bptt import stack
from bptt.corpus import Vocabulary
from bptt.errors import SettingError, UsageError

MAX_LENGTH = 10_000_000  # characters of one sample: minutes of steps, a few hundred MB
# an int64 id, a pointer in the decoding's list and up to 4 bytes of the decoded string
BYTES_PER_SAMPLED_CHARACTER = 24


def check_prime(prime: str, vocabulary: Vocabulary) -> None:
    """A SettingError about `prime` naming its characters outside the vocabulary, if any."""
    unknown = sorted({character for character in prime if character not in vocabulary})
    if unknown:
        shown = ", ".join(repr(character) for character in unknown[:5])
        raise SettingError.invalid(
            "prime", f"{len(unknown)} character(s) not in the model's vocabulary: {shown}"
        )


def memory_needed(
    hidden_size: int, vocabulary_size: int, itemsize: int, length: int, prime_length: int
) -> int:
    """Bytes a sample takes beyond the parameters: the prime's states and logits (one forward
    call), then its characters."""
    prime = (prime_length + 1) * (hidden_size + vocabulary_size) * itemsize
    return prime + BYTES_PER_SAMPLED_CHARACTER * length


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
    logits, state = stack.forward(params, vocabulary.encode(prime), activation=activation)
    logits = logits[-1]
    token = np.empty(1, np.int64)
    ids = np.empty(length, np.int64)
    for i in range(length):
        if not np.isfinite(logits).all():  # finite parameters whose products overflow
            raise UsageError(
                f"the model's logits are not finite at character {i} of the sample: its "
                "parameters are too large for their dtype"
            )
        # softmax(o / temperature) in float64, the max subtracted before dividing: then every
        # exponent is <= 0, and a tiny temperature sends all but the top to exp(-inf) = 0
        scaled = logits.astype(np.float64) - logits.max()
        with np.errstate(over="ignore"):  # overflowing to -inf is the limit meant
            scaled /= temperature
        probabilities = np.exp(scaled)
        cumulative = np.cumsum(probabilities)
        ids[i] = token[0] = min(
            int(np.searchsorted(cumulative, rng.random() * cumulative[-1], side="right")),
            len(vocabulary) - 1,
        )
        logits, state = stack.forward(params, token, h0=state, activation=activation)
        logits = logits[0]
    return vocabulary.decode(ids)
