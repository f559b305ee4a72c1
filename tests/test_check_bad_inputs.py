"""Every bad option of `bptt check` gets one line on stderr naming it and exit status 2, before
any work, never a traceback."""

import time

import pytest
from command_line import assert_one_line_error, bptt_command

import bptt

NOT_A_SIZE = (
    "--memory-budget: expected a size such as '512MiB', '2 GB' or '1.5GiB' (units B, kB, MB, "
    "GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB)"
)
# the default problem's: -T 100 -B 32 -D 128 -H 256 -O 128, float32
BELOW_THE_MINIMUM = (
    f"--memory-budget: expected at least {bptt.memory_plan(100, 32, 128, 256, 128).minimum_bytes} "
    "bytes (the smallest schedule's need for this problem)"
)


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
        ("--memory-budget", "12 parsecs", f"{NOT_A_SIZE}, got '12 parsecs'"),
        ("--memory-budget", "-5", f"{NOT_A_SIZE}, got '-5'"),
        ("--memory-budget", "1KiB", f"{BELOW_THE_MINIMUM}, got 1024"),
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
