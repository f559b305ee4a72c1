"""`bptt train` against the same training loop in PyTorch eager (nn.RNN with one-hot inputs +
nn.Linear + cross-entropy + clip_grad_norm_ + torch.optim), in float64: the same initial
weights, data order, optimizer, clipping, learning-rate schedule and layers give the same
parameters after 50 steps."""

import numpy as np
import pytest
from torch_loop import TorchLoop

import bptt
from bptt import lr_schedule, optimizers, training
from bptt.trainer import Trainer
from bptt.training_config import Budget, TrainConfig

torch = pytest.importorskip("torch")

STEPS = 50
# 1200 characters: 38 steps an epoch at batch 3, seq-len 10, so the 50 steps cross an epoch's
# end (its shorter last chunk and the reset of the state)
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]
# Each step's gradients differ from torch's by rounding only: sums of at most T·B·H = 480 terms
# in another order, a few hundred ulps. 50 updates add such errors up, linearly while the run
# stays smooth: 1000 ulps of float64 a step, relative to parameters of size about 1.
TOLERANCE = STEPS * 1000 * np.finfo(np.float64).eps


@pytest.fixture(autouse=True)
def one_thread():
    # one thread each: these problems are far too small to gain from more
    threads, torch_threads = bptt.get_num_threads(), torch.get_num_threads()
    bptt.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    bptt.set_num_threads(threads)
    torch.set_num_threads(torch_threads)


def train_both(
    tmp_path,
    optimizer: str,
    clip: float,
    activation: str = "tanh",
    layers: int = 1,
    schedule: str = "constant",
):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    config = TrainConfig(
        text=str(text_file),
        hidden=16,
        seq_len=10,
        batch=3,
        optimizer=optimizer,
        clip=clip,
        activation=activation,
        layers=layers,
        lr_schedule=schedule,
        dtype="float64",
        seed=3,
        eval_every=20,
        checkpoint_every=20,
    )
    initial = Trainer.start(config)  # the weights a run with this seed starts from
    peer = TorchLoop(
        initial.params,
        initial.streams,
        optimizer=optimizer,
        lr=config.learning_rate,
        clip=clip,
        activation=activation,
        # a run of --steps STEPS: its schedule's horizon
        lr_at=lambda done: lr_schedule.learning_rate(
            schedule, config.learning_rate, done, done / STEPS
        ),
    )
    for _ in range(STEPS):
        peer.step()
    outcome = training.train(config, tmp_path / "run", Budget(steps=STEPS), show_progress=False)
    assert outcome.trainer.step_count == STEPS
    return outcome.trainer.params, peer.params()


def assert_same_params(ours, theirs):
    assert set(ours) == set(theirs)
    for name in ours:
        np.testing.assert_allclose(
            ours[name], theirs[name], rtol=0, atol=TOLERANCE, err_msg=f"parameter {name}"
        )


@pytest.mark.parametrize("optimizer", list(optimizers.OPTIMIZERS))
def test_fifty_steps_match_torch_with_clipping_active(tmp_path, optimizer):
    # the gradient norm starts near 0.4: a clip at 0.25 scales most steps
    ours, theirs = train_both(tmp_path, optimizer, clip=0.25)
    assert_same_params(ours, theirs)


@pytest.mark.parametrize("optimizer", list(optimizers.OPTIMIZERS))
def test_fifty_steps_match_torch_without_clipping(tmp_path, optimizer):
    ours, theirs = train_both(tmp_path, optimizer, clip=1e6)
    assert_same_params(ours, theirs)


def test_fifty_steps_match_torch_with_relu(tmp_path):
    ours, theirs = train_both(tmp_path, "adam", clip=0.25, activation="relu")
    assert_same_params(ours, theirs)


@pytest.mark.parametrize("layers", [2, 3])
def test_fifty_steps_of_a_stack_match_torch(tmp_path, layers):
    ours, theirs = train_both(tmp_path, "adam", clip=0.25, layers=layers)
    assert len(ours) == 3 * layers + 2
    assert_same_params(ours, theirs)


def test_fifty_steps_on_a_cosine_schedule_match_torch(tmp_path):
    ours, theirs = train_both(tmp_path, "adam", clip=0.25, schedule="cosine")
    assert_same_params(ours, theirs)


@pytest.mark.parametrize("max_norm", [0.1, 100.0])
@pytest.mark.parametrize("bad", [None, np.nan, np.inf], ids=["finite", "a NaN", "an infinity"])
def test_clip_grad_norm_scales_as_torch_does(max_norm, bad):
    rng = np.random.default_rng(0)
    grads = {
        name: rng.standard_normal(shape)
        for name, shape in {"U": (5, 4), "W": (5, 5), "b": (5,), "V": (3, 5), "c": (3,)}.items()
    }
    if bad is not None:
        grads["W"][2, 3] = bad
    tensors = [torch.from_numpy(grad.copy()).requires_grad_() for grad in grads.values()]
    for tensor in tensors:
        tensor.grad = tensor.detach().clone()
    torch_norm = torch.nn.utils.clip_grad_norm_(tensors, max_norm)
    vector = np.concatenate([grad.ravel() for grad in grads.values()])
    norm = optimizers.clip_grad_norm(vector, max_norm)
    # one norm of 57 squares: a few ulps apart at most
    assert norm == pytest.approx(float(torch_norm), rel=1e-14, nan_ok=True)
    clipped = np.concatenate([tensor.grad.numpy().ravel() for tensor in tensors])
    np.testing.assert_allclose(vector, clipped, rtol=1e-14, atol=0)  # NaN where torch has NaN
