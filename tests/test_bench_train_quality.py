"""bench/train_quality.py end to end on a tiny text and a few steps: it runs bptt train and the
PyTorch recipes one after the other and writes the plot and the table of their validation
losses."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("matplotlib")

BENCH = Path(__file__).resolve().parents[1] / "bench" / "train_quality.py"
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(300))


def test_a_few_steps_of_each_run_give_the_plot_and_the_table(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    out = tmp_path / "quality"
    command = [sys.executable, str(BENCH), "--steps", "3", "--threads", "1"]
    command += ["--text", str(text_file), "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr

    assert (out / "train_quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = (out / "train_quality.md").read_text().splitlines()
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert [row.split(" | ")[0] for row in rows] == [
        "| bptt train (defaults)",
        "| PyTorch nn.LSTM",
        "| PyTorch nn.RNN",
    ]
    for row in rows:
        cells = row.strip("| ").split(" | ")
        end_bpc, steps = float(cells[1]), int(cells[3])
        # a few steps from uniform guesses over the text's 30-odd characters: about 5 bits
        assert 2 < end_bpc < 6, row
        assert steps == 3, row
    assert "3 steps each" in table[0]


def test_the_runs_may_be_bptt_trains_two_compute_dtypes(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    out = tmp_path / "quality"
    command = [sys.executable, str(BENCH), "--steps", "2", "--threads", "1", "--runs"]
    command += ["bptt,bptt-bfloat16", "--text", str(text_file), "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    table = (out / "train_quality.md").read_text()
    assert "| bptt train (defaults) |" in table
    assert "| bptt train --compute-dtype bfloat16 |" in table
    assert "nn.LSTM" not in table


def test_an_unknown_run_is_named():
    command = [sys.executable, str(BENCH), "--steps", "1", "--runs", "bptt,gru"]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert completed.returncode == 2
    assert "--runs: expected names from bptt, bptt-bfloat16, lstm, rnn, got ['gru']" in (
        completed.stderr
    )
