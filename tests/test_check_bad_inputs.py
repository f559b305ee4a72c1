"""Every bad option of `bptt check` gets one line on stderr naming it and exit status 2, before
any work, never a traceback."""

import time

import pytest
from command_line import assert_one_line_error, bptt_command


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
    result = bptt_command("check", option, value)
    assert_one_line_error(result, "check")
    assert result.stderr.splitlines() == [f"bptt check: error: {phrase}"]


@pytest.mark.parametrize(
    ("option", "value"), [("-T", 10**9), ("-B", 10**9), ("-H", 10**7), ("-O", 10**9)]
)
def test_sizes_too_large_for_the_memory_are_refused_before_allocating(option, value):
    start = time.perf_counter()
    result = bptt_command("check", option, str(value))
    assert_one_line_error(result, "check", f"{option} {value}", "GB of memory", "available")
    assert time.perf_counter() - start < 30
