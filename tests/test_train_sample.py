"""`bptt sample`: text from a trained run, the same for the same seed."""

import subprocess
import sys

import numpy as np
import pytest

import bptt
from bptt import sampling, training
from bptt.corpus import Vocabulary
from bptt.training_config import Budget, TrainConfig

TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("sample")
    (root / "text.txt").write_text(TEXT)
    threads = bptt.get_num_threads()
    bptt.set_num_threads(1)
    config = TrainConfig(text=str(root / "text.txt"), hidden=16, seq_len=10, batch=3)
    training.train(config, root / "run", Budget(steps=40), show_progress=False)
    bptt.set_num_threads(threads)
    return root / "run"


def sample(run_dir, *options: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "bptt", "sample", str(run_dir), *options],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout


def test_the_same_seed_gives_the_same_text(run_dir):
    assert sample(run_dir, "--seed", "7") == sample(run_dir, "--seed", "7")


def test_another_seed_gives_another_text(run_dir):
    assert sample(run_dir, "--seed", "7") != sample(run_dir, "--seed", "8")


def test_the_text_is_the_prime_then_length_characters_of_the_vocabulary(run_dir):
    text = sample(run_dir, "--seed", "1", "--prime", "def f1", "--length", "50")
    assert text.endswith("\n")  # print's
    assert text.startswith("def f1")
    assert len(text) == len("def f1") + 50 + 1
    assert set(text) <= set(TEXT)


def test_a_low_temperature_draws_the_most_likely_character():
    # two characters; after either the model all but certainly prefers "b" (logit 3 against 0)
    vocabulary = Vocabulary("ab")
    params = {
        "U": np.zeros((2, 2)), "W": np.zeros((2, 2)), "b": np.zeros(2),
        "V": np.zeros((2, 2)), "c": np.array([0.0, 3.0]),
    }  # fmt: skip
    text = sampling.generate(params, vocabulary, 200, np.random.default_rng(0), temperature=0.05)
    assert text == "b" * 200
