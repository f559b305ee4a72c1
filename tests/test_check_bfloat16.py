"""`bptt check --compute-dtype bfloat16` runs its problem with bfloat16 products too: against
the float64 oracle within bfloat16's accuracy (bptt.reference_bfloat16's bounds), and at 1
thread and at several, bit for bit; a gradient beyond the bound fails the check, and float64
params are refused naming the options."""

import re

import pytest
from command_line import bptt_command
from test_same_bits_any_threads import restore_threads  # noqa: F401

from bptt import __main__, check

SIZES = ["-T", "30", "-B", "8", "-D", "20", "-H", "64", "-O", "24", "--repeats", "1"]


def test_the_check_judges_bfloat16_products_by_the_oracle_and_across_threads():
    result = bptt_command("check", *SIZES, "--compute-dtype", "bfloat16")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(
        r"^core \(float32, bfloat16 products: .*\) against the NumPy oracle", out, re.MULTILINE
    )
    for name in ("loss", "dU", "dW", "db", "dV", "dc", "dh0", "dx"):
        assert re.search(rf"^\s+{name}  relative error = \S+  ok$", out, re.MULTILINE), (name, out)
    assert re.search(
        r"^core \(float32, bfloat16 products\) at 1 and \d+ threads: loss, every gradient and "
        r"h_last the same bits  ok$",
        out,
        re.MULTILINE,
    )
    assert out.splitlines()[-1] == "check passed"


def test_a_gradient_beyond_bfloat16s_accuracy_fails_the_check(monkeypatch, capsys):
    loss_and_grad = check._api.loss_and_grad

    def dW_five_percent_off_with_bfloat16(*args, **kwargs):
        result = loss_and_grad(*args, **kwargs)
        if kwargs.get("compute_dtype") == "bfloat16":
            result.grads["W"][...] *= 1.05
        return result

    monkeypatch.setattr(check._api, "loss_and_grad", dW_five_percent_off_with_bfloat16)
    assert __main__.main(["check", *SIZES, "--compute-dtype", "bfloat16"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(re.fullmatch(r"\s+dW  relative error = 5\.\d+e-02  FAILED", line) for line in lines)
    assert lines[-1] == "check FAILED"


def test_bfloat16_products_with_float64_params_are_refused_naming_the_options():
    result = bptt_command("check", *SIZES, "--dtype", "float64", "--compute-dtype", "bfloat16")
    assert result.returncode == 2
    assert "--compute-dtype bfloat16: expected --dtype float32" in result.stderr


@pytest.mark.parametrize("value", ["float16", "bf16"])
def test_an_unknown_compute_dtype_is_refused(value):
    result = bptt_command("check", *SIZES, "--compute-dtype", value)
    assert result.returncode == 2
    assert "--compute-dtype" in result.stderr
