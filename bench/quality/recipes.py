"""The PyTorch peers of `bptt train`: a character model on torch.nn.LSTM or torch.nn.RNN (tanh)
trained as `bptt train` trains its own, step for step (tests/torch_loop.py is the same loop for
the Elman model alone), writing a metrics.csv in `bptt train`'s format."""

import time
from pathlib import Path

import numpy as np
import torch

from bptt import corpus, metrics, validation
from bptt.training_config import TrainConfig

RECIPES = ("lstm", "rnn")
# the recipe: PyTorch's usual character model, at the sizes of bptt train's first defaults
HIDDEN = 256
LR = 2e-3
CLIP = 5.0
BATCH = 32  # streams, also of the validation text, as bptt train's --batch
SEQ_LEN = 100


class CharModel(torch.nn.Module):
    """One-hot characters in, the recurrent layer, nn.Linear out to the logits."""

    def __init__(self, recipe: str, vocabulary_size: int):
        super().__init__()
        self.vocabulary_size = vocabulary_size
        layer = torch.nn.LSTM if recipe == "lstm" else torch.nn.RNN
        self.recurrent = layer(vocabulary_size, HIDDEN)
        self.head = torch.nn.Linear(HIDDEN, vocabulary_size)

    def forward(self, ids: torch.Tensor, state):
        one_hot = torch.nn.functional.one_hot(ids, self.vocabulary_size).float()
        hidden, state = self.recurrent(one_hot, state)
        return self.head(hidden), state


def _detached(state):
    """The state carried to the next chunk, cut from the graph of this one."""
    return tuple(part.detach() for part in state) if isinstance(state, tuple) else state.detach()


def train(recipe: str, text: str, out: Path, *, minutes: float | None, steps: int | None) -> None:
    """Train the recipe on `text` until `minutes` of wall time or `steps` steps, validating as
    `bptt train` does (how often, on how much text: its defaults); its rows in
    out/metrics.csv."""
    defaults = TrainConfig()
    text_corpus = corpus.Corpus.of_text(text)
    streams = corpus.Streams(text_corpus.train_ids, BATCH, SEQ_LEN)
    torch.manual_seed(defaults.seed)
    model = CharModel(recipe, len(text_corpus.vocabulary))
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    validation_ids = text_corpus.validation_ids[: defaults.validation_chars + 1]

    def forward(inputs: np.ndarray, state):
        with torch.no_grad():
            logits, state = model(torch.from_numpy(inputs), state)
        return logits.numpy(), state

    out.mkdir(parents=True, exist_ok=True)
    position, state, step = 0, None, 0
    interval_nats, interval_steps, interval_chars, interval_seconds = 0.0, 0, 0, 0.0
    start = time.perf_counter()
    with metrics.MetricsLog(out) as log:
        while not (
            (steps is not None and step >= steps)
            or (minutes is not None and time.perf_counter() - start >= 60 * minutes)
        ):
            step_start = time.perf_counter()
            inputs, targets = streams.chunk(position)
            logits, state = model(torch.from_numpy(inputs), state)
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), torch.from_numpy(targets).reshape(-1)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
            optimizer.step()
            position = streams.next_position(position)
            # as bptt train: a new epoch starts every stream afresh, from a zero state
            state = _detached(state) if position else None
            step += 1
            interval_nats += float(loss.detach())
            interval_steps += 1
            interval_chars += inputs.size
            interval_seconds += time.perf_counter() - step_start
            bpc = None
            if step % defaults.eval_every == 0:
                bpc = validation.bits_per_character(forward, validation_ids, BATCH)
            if step % defaults.log_every == 0 or bpc is not None:
                train_bpc = interval_nats / interval_steps / np.log(2)
                elapsed = time.perf_counter() - start
                log.write(step, elapsed, train_bpc, bpc, interval_chars / interval_seconds)
                interval_nats, interval_steps, interval_chars, interval_seconds = 0.0, 0, 0, 0.0
        if step % defaults.eval_every or step == 0:
            bpc = validation.bits_per_character(forward, validation_ids, BATCH)
            log.write(step, time.perf_counter() - start, None, bpc, None)
