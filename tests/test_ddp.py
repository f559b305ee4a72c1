"""examples/ddp_train.py, DistributedDataParallel (gloo, 2 processes on 127.0.0.1) over a model
built on bptt.torch.RNN: the gradients after one backward, averaged by DDP over the processes'
slices of the batch, equal the gradients of one process on the whole batch."""

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import closeness
import pytest

torch = pytest.importorskip("torch")
if not torch.distributed.is_available() or not torch.distributed.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ddp_train.py"
OPTIONS = ["--processes", "2", "--batch", "8", "--seq-len", "10", "--hidden", "16"]
OPTIONS += ["--layers", "2", "--steps", "1", "--timeout", "30"]
# Every process starts in well under 10 s; past this the run has hung and is killed.
DEADLINE_SECONDS = 50


def load_example():
    spec = importlib.util.spec_from_file_location("ddp_train", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_example(arguments: list[str]) -> str:
    """The example in its own process group, killed whole if it outlives the deadline."""
    process = subprocess.Popen(
        [sys.executable, str(EXAMPLE), *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=DEADLINE_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the DDP example ran past {DEADLINE_SECONDS} s:\n{output}")
    assert process.returncode == 0, output
    return output


def test_ddp_gradients_equal_single_process_gradients_on_the_whole_batch(tmp_path):
    saved = tmp_path / "gradients.pt"
    run_example([*OPTIONS, "--save-gradients", str(saved)])
    distributed = torch.load(saved)

    example = load_example()
    args = example.parse_args([*OPTIONS, "--init-method", "unused"])
    model = example.build_model(args)
    tokens, targets = example.make_batch(0, args)
    example.mean_loss(model, tokens, targets).backward()

    single = dict(model.named_parameters())
    assert distributed.keys() == single.keys()
    # float32 sums of T·B·H ≈ 1000 products, in other orders in the two runs (slices, then
    # DDP's average), over the T = 10 steps of --seq-len
    for name, gradient in distributed.items():
        closeness.assert_close(
            gradient, single[name].grad, dtype=torch.float32, terms=10, name=name
        )
