"""Every bad option of `bptt check` gets one line on stderr naming it and exit status 2, before
any work, never a traceback."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("option", "value", "phrase"),
    [
        ("-H", "0", "-H/--hidden: expected an integer >= 1, got 0"),
        ("-T", "0", "-T/--steps: expected an integer >= 1, got 0"),
        ("-B", "-1", "-B/--batch: expected an integer >= 1, got -1"),
        ("-D", "0", "-D/--input: expected an integer >= 1, got 0"),
        ("-O", "0", "-O/--output: expected an integer >= 1, got 0"),
        ("--repeats", "0", "--repeats: expected an integer >= 1, got 0"),
        ("--seed", "-1", "--seed: expected an integer >= 0, got -1"),
    ],
)
def test_an_invalid_option(option, value, phrase):
    result = subprocess.run(
        [sys.executable, "-m", "bptt", "check", option, value],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"bptt check: error: {phrase}"]
    assert result.stdout == ""
