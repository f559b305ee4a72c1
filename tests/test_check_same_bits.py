"""`bptt check` compares the core's loss, every gradient and h_last at 1 thread and at the
default thread count (at least 2), bitwise: one line says whether they are the same bits, and a
difference fails the check."""

import re

import numpy as np
from command_line import bptt_command
from test_same_bits_any_threads import restore_threads  # noqa: F401

import bptt
from bptt import __main__, check

# A problem whose steps stay on one thread: on two threads the core pipelines its chunks.
SIZES = ["-T", "40", "-B", "16", "-D", "20", "-H", "192", "-O", "24", "--repeats", "1"]


def test_the_check_finds_the_same_bits_at_1_and_the_default_thread_count():
    result = bptt_command("check", *SIZES)
    assert result.returncode == 0, result.stdout + result.stderr
    line = re.search(
        r"^core \(float32\) at 1 and (\d+) threads: (.*)$", result.stdout, re.MULTILINE
    )
    assert line, result.stdout
    assert int(line[1]) >= 2
    assert line[2] == "loss, every gradient and h_last the same bits  ok"
    assert result.stdout.splitlines()[-1] == "check passed"


def test_gradients_that_differ_between_thread_counts_fail_the_check(monkeypatch, capsys):
    loss_and_grad = check._api.loss_and_grad

    def one_ulp_off_on_several_threads(*args, **kwargs):
        result = loss_and_grad(*args, **kwargs)
        if bptt.get_num_threads() > 1:
            d_W = result.grads["W"]
            d_W[0, 0] = np.nextafter(d_W[0, 0], d_W.dtype.type(np.inf))
        return result

    monkeypatch.setattr(check._api, "loss_and_grad", one_ulp_off_on_several_threads)
    bptt.set_num_threads(1)  # the check compares with 2 threads then, at least
    assert __main__.main(["check", *SIZES]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "core (float32) at 1 and 2 threads: dW not the same bits  FAILED" in lines
    assert lines[-1] == "check FAILED"
    assert bptt.get_num_threads() == 1  # the caller's thread count, back
