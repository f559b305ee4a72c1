"""The validation loss of `bptt train`: the mean cross-entropy of the held-out text in bits per
character, the state carried across the chunks it is scored in."""

import math

import numpy as np
import pytest

from bptt import reference
from bptt.trainer import Trainer
from bptt.training_config import TrainConfig
from bptt.validation import VALIDATION_CHUNK

# 14,500 characters: 725 held out, more than one validation chunk (500 time steps)
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(400))


@pytest.fixture
def trainer(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    config = TrainConfig(
        text=str(text_file), hidden=16, seq_len=10, batch=1, dtype="float64", seed=5
    )
    return Trainer.start(config)


def oracle_bpc(trainer, ids) -> float:
    """The oracle's mean cross-entropy of predicting ids[1:] from ids[:-1], as one sequence."""
    loss = reference.loss_and_grad(trainer.params, ids[:-1], ids[1:], reduction="mean").loss
    return loss / math.log(2)


def test_validation_scores_the_whole_held_out_text_as_one_sequence(trainer):
    ids = trainer.corpus.validation_ids
    assert len(ids) > VALIDATION_CHUNK + 1
    # float64, 725 terms of a mean: agreement to rounding
    assert trainer.validation_bpc() == pytest.approx(oracle_bpc(trainer, ids), rel=1e-12)


def test_validation_scores_only_the_first_validation_chars(trainer):
    trainer.config = TrainConfig(**{**trainer.config.__dict__, "validation_chars": 100})
    ids = trainer.corpus.validation_ids[:101]
    assert trainer.validation_bpc() == pytest.approx(oracle_bpc(trainer, ids), rel=1e-12)


def test_an_untrained_model_scores_about_log2_of_the_vocabulary(trainer):
    # small initial weights give nearly uniform predictions over the 25 characters
    assert trainer.validation_bpc() == pytest.approx(
        np.log2(len(trainer.corpus.vocabulary)), rel=0.05
    )
