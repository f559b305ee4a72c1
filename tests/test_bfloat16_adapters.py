"""compute_dtype="bfloat16" through the adapters and the command line: bptt.torch (by the keyword,
and inside torch.autocast("cpu", dtype=torch.bfloat16)), bptt.jax, and `bptt train
--compute-dtype bfloat16`, whose checkpoints record it and whose resumes keep it. Each gives the
bits of the NumPy API's bfloat16 call (the same core call), and float32 gradients."""

from dataclasses import replace

import numpy as np
import pytest
from command_line import assert_one_line_error, bptt_command
from random_problems import make_problem

import bptt
from bptt import checkpoint, training
from bptt._model import PARAM_NAMES
from bptt.training_config import Budget, TrainConfig

BF16 = {"compute_dtype": "bfloat16"}
TEXT = "".join(f"def f{i}(x):\n    return x * {i} + {i % 7}\n" for i in range(200))[:1200]


@pytest.fixture
def problem():
    return make_problem(21, 12, 3, 7, 16, 6, dtype=np.float32)


# -- bptt.torch -----------------------------------------------------------------------------------


def torch_loss_and_grads(torch, problem, inputs=None, **options):
    """bptt.torch.rnn_softmax_loss's loss and the gradients of the params and h0."""
    from bptt.torch import rnn_softmax_loss

    params = {name: torch.tensor(problem.params[name], requires_grad=True) for name in PARAM_NAMES}
    h0 = torch.tensor(problem.h0, requires_grad=True)
    inputs = torch.from_numpy(problem.inputs) if inputs is None else inputs
    loss = rnn_softmax_loss(params, inputs, torch.from_numpy(problem.targets), h0=h0, **options)
    loss.backward()
    grads = {name: params[name].grad for name in PARAM_NAMES} | {"h0": h0.grad}
    return loss, grads


def assert_torch_matches_numpy(loss, grads, expected):
    assert loss.dtype.itemsize == 4  # float32, the loss rounded to it
    assert loss.item() == np.float32(expected.loss)
    for name, grad in grads.items():
        assert grad.dtype.itemsize == 4, name  # float32
        np.testing.assert_array_equal(grad.numpy(), expected.grads[name], err_msg=name)


def test_torch_softmax_loss_takes_compute_dtype(problem):
    torch = pytest.importorskip("torch")
    expected = bptt.loss_and_grad(*problem[:3], h0=problem.h0, **BF16)
    assert_torch_matches_numpy(*torch_loss_and_grads(torch, problem, **BF16), expected)


def test_torch_softmax_loss_runs_bfloat16_inside_autocast(problem):
    torch = pytest.importorskip("torch")
    expected = bptt.loss_and_grad(*problem[:3], h0=problem.h0, **BF16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        # an autocast operation's output (bfloat16) as the inputs, taken as float32
        inputs = torch.from_numpy(problem.inputs) @ torch.eye(problem.inputs.shape[-1])
        assert inputs.dtype == torch.bfloat16
        loss, grads = torch_loss_and_grads(torch, problem, inputs=inputs)
    rounded = problem._replace(inputs=inputs.float().numpy())
    expected = bptt.loss_and_grad(*rounded[:3], h0=problem.h0, **BF16)
    assert_torch_matches_numpy(loss, grads, expected)


def test_torch_autocast_to_another_dtype_leaves_the_products_alone(problem):
    torch = pytest.importorskip("torch")
    expected = bptt.loss_and_grad(*problem[:3], h0=problem.h0)
    with torch.autocast("cpu", dtype=torch.float16):
        assert_torch_matches_numpy(*torch_loss_and_grads(torch, problem), expected)


def torch_rnn(torch, problem, **options):
    from bptt.torch import RNN

    (H, D) = problem.params["U"].shape
    rnn = RNN(D, H, **options)
    with torch.no_grad():
        rnn.weight_ih_l0.copy_(torch.from_numpy(problem.params["U"]))
        rnn.weight_hh_l0.copy_(torch.from_numpy(problem.params["W"]))
        rnn.bias_ih_l0.copy_(torch.from_numpy(problem.params["b"]))
        rnn.bias_hh_l0.zero_()
    return rnn


def test_torch_rnn_takes_compute_dtype_and_runs_bfloat16_inside_autocast(problem):
    torch = pytest.importorskip("torch")
    expected = bptt.layer_forward(problem.params, problem.inputs, h0=problem.h0, **BF16)
    d_hidden = np.random.default_rng(0).standard_normal(expected.hidden.shape).astype(np.float32)
    expected_grads = bptt.layer_backward(
        problem.params, problem.inputs, expected.hidden, h0=problem.h0, d_hidden=d_hidden, **BF16
    )
    explicit = torch_rnn(torch, problem, **BF16)
    autocast = torch_rnn(torch, problem)
    for rnn, inside_autocast in ((explicit, False), (autocast, True)):
        inputs = torch.tensor(problem.inputs, requires_grad=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=inside_autocast):
            output, h_n = rnn(inputs, torch.from_numpy(problem.h0)[None])
        np.testing.assert_array_equal(output.detach().numpy(), expected.hidden)
        np.testing.assert_array_equal(h_n[0].detach().numpy(), expected.h_last)
        output.backward(torch.from_numpy(d_hidden))
        assert rnn.weight_hh_l0.grad.dtype == torch.float32
        np.testing.assert_array_equal(rnn.weight_hh_l0.grad.numpy(), expected_grads["W"])
        np.testing.assert_array_equal(rnn.weight_ih_l0.grad.numpy(), expected_grads["U"])
        np.testing.assert_array_equal(inputs.grad.numpy(), expected_grads["x"])


@pytest.mark.parametrize("inside_autocast", [False, True], ids=["keyword", "autocast"])
def test_torch_rnn_takes_a_packed_sequence_of_bfloat16_data_as_float32(problem, inside_autocast):
    # as it takes a padded bfloat16 tensor (an autocast operation's output): the same bits
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence

    rnn = torch_rnn(torch, problem, **({} if inside_autocast else BF16))
    inputs = torch.tensor(problem.inputs).bfloat16().requires_grad_()
    lengths = torch.full((inputs.shape[1],), inputs.shape[0])
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=inside_autocast):
        padded, _ = rnn(inputs)
        packed, _ = rnn(pack_padded_sequence(inputs, lengths))
    assert packed.data.dtype == torch.float32
    torch.testing.assert_close(packed.data, padded.flatten(0, 1), rtol=0, atol=0)
    packed.data.sum().backward()
    assert inputs.grad.dtype == torch.bfloat16


@pytest.mark.parametrize("value", ["float16", "bf16", 16, b"bfloat16"], ids=repr)
def test_torch_rnn_refuses_a_compute_dtype_no_weights_take_when_made_naming_it(problem, value):
    torch = pytest.importorskip("torch")
    with pytest.raises(ValueError, match=r"^compute_dtype: expected None, 'bfloat16' "):
        torch_rnn(torch, problem, compute_dtype=value)


def test_torch_rnn_refuses_a_compute_dtype_its_weights_do_not_take_when_called(problem):
    torch = pytest.importorskip("torch")
    rnn = torch_rnn(torch, problem, compute_dtype="float64")  # float32 weights
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        rnn(torch.from_numpy(problem.inputs))


def test_torch_rnn_shows_a_compute_dtype_in_its_repr_as_nn_rnn_shows_its_options(problem):
    torch = pytest.importorskip("torch")
    from bptt.torch import RNN

    assert repr(RNN(3, 4, compute_dtype="bfloat16")) == "RNN(3, 4, compute_dtype='bfloat16')"
    assert repr(RNN(3, 4, num_layers=2)) == repr(torch.nn.RNN(3, 4, num_layers=2))


@pytest.mark.parametrize("argument", ["inputs", "h0"])
def test_torch_softmax_loss_under_bfloat16_names_an_argument_that_is_no_tensor(problem, argument):
    torch = pytest.importorskip("torch")
    from bptt.torch import rnn_softmax_loss

    params = {name: torch.from_numpy(problem.params[name]) for name in PARAM_NAMES}
    arguments = {"inputs": torch.from_numpy(problem.inputs), "h0": torch.from_numpy(problem.h0)}
    arguments[argument] = arguments[argument].tolist()
    targets = torch.from_numpy(problem.targets)
    with pytest.raises(TypeError, match=f"{argument}: expected a torch.Tensor, got list"):
        rnn_softmax_loss(params, arguments["inputs"], targets, h0=arguments["h0"], **BF16)
    with (
        torch.autocast("cpu", dtype=torch.bfloat16),
        pytest.raises(TypeError, match=f"{argument}: expected a torch.Tensor, got list"),
    ):
        rnn_softmax_loss(params, arguments["inputs"], targets, h0=arguments["h0"])


# -- bptt.jax -------------------------------------------------------------------------------------


def test_jax_loss_and_rnn_take_compute_dtype(problem):
    jax = pytest.importorskip("jax")
    import bptt.jax

    params, inputs, targets, h0 = problem
    expected = bptt.loss_and_grad(params, inputs, targets, h0=h0, **BF16)

    def loss_of(params, h0):
        return bptt.jax.loss(params, inputs, targets, h0=h0, **BF16)

    loss, grads = jax.value_and_grad(loss_of, argnums=(0, 1))(params, h0)
    assert float(loss) == np.float32(expected.loss)
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(np.asarray(grads[0][name]), expected.grads[name], name)
    np.testing.assert_array_equal(np.asarray(grads[1]), expected.grads["h0"])
    hidden, h_last = bptt.jax.rnn(params, inputs, h0=h0, **BF16)
    layer = bptt.layer_forward(params, inputs, h0=h0, **BF16)
    np.testing.assert_array_equal(np.asarray(hidden), layer.hidden)
    np.testing.assert_array_equal(np.asarray(h_last), layer.h_last)


def test_a_numpy_string_names_the_compute_dtype_as_a_str_does_in_every_adapter(problem):
    # the NumPy API's core takes str subclasses (np.str_, as read from an array of names)
    torch = pytest.importorskip("torch")
    pytest.importorskip("jax")
    import bptt.jax

    spelled = {"compute_dtype": np.str_("bfloat16")}
    expected = bptt.layer_forward(problem.params, problem.inputs, h0=problem.h0, **BF16).hidden
    hidden, _ = bptt.jax.rnn(problem.params, problem.inputs, h0=problem.h0, **spelled)
    np.testing.assert_array_equal(np.asarray(hidden), expected)
    rnn = torch_rnn(torch, problem, **spelled)
    output, _ = rnn(torch.from_numpy(problem.inputs), torch.from_numpy(problem.h0)[None])
    np.testing.assert_array_equal(output.detach().numpy(), expected)
    assert type(rnn.compute_dtype) is str


def test_jax_loss_is_the_same_bits_under_a_budget(problem):
    jax = pytest.importorskip("jax")
    import bptt.jax

    params, inputs, targets, h0 = problem

    def gradients(**budget):
        return jax.grad(bptt.jax.loss)(params, inputs, targets, h0=h0, **budget, **BF16)

    budgeted, plain = gradients(memory_budget=10**8), gradients()
    for name in PARAM_NAMES:
        np.testing.assert_array_equal(np.asarray(budgeted[name]), np.asarray(plain[name]), name)


@pytest.mark.parametrize("value", ["float16", "bf16", 3])
def test_jax_refuses_an_unknown_compute_dtype_naming_it(problem, value):
    pytest.importorskip("jax")
    import bptt.jax

    with pytest.raises(ValueError, match="compute_dtype: expected"):
        bptt.jax.loss(problem.params, *problem[1:3], compute_dtype=value)
    with pytest.raises(ValueError, match="compute_dtype: expected"):
        bptt.jax.rnn(problem.params, problem.inputs, compute_dtype=value)


# -- bptt train -----------------------------------------------------------------------------------


@pytest.fixture
def config(tmp_path):
    text_file = tmp_path / "text.txt"
    text_file.write_text(TEXT)
    return TrainConfig(
        text=str(text_file),
        hidden=16,
        seq_len=10,
        batch=3,
        eval_every=10,
        checkpoint_every=10,
        compute_dtype="bfloat16",
        lr_schedule="constant",  # a resume to a longer run keeps its rates
    )


def test_bptt_train_compute_dtype_is_recorded_and_trains_otherwise_than_float32(tmp_path, config):
    options = ["--text", config.text, "--hidden", "16", "--seq-len", "10", "--batch", "3",
               "--steps", "4", "--threads", "1", "--quiet"]  # fmt: skip
    for name, extra in {"bfloat16": ["--compute-dtype", "bfloat16"], "float32": []}.items():
        result = bptt_command("train", *options, "--out", str(tmp_path / name), *extra)
        assert result.returncode == 0, result.stderr
    bf16, f32 = (checkpoint.read_run(tmp_path / name) for name in ("bfloat16", "float32"))
    assert bf16.config.compute_dtype == "bfloat16"
    assert f32.config.compute_dtype is None
    assert not np.array_equal(bf16.params["W"], f32.params["W"])


def test_a_bfloat16_run_resumed_trains_as_one_run(tmp_path, config):
    one_go = training.train(config, tmp_path / "one", Budget(steps=20), show_progress=False)
    training.train(config, tmp_path / "two", Budget(steps=10), show_progress=False)
    resumed = training.resume(tmp_path / "two", Budget(steps=20), show_progress=False)
    assert resumed.trainer.config.compute_dtype == "bfloat16"
    for name, value in one_go.trainer.params.items():
        np.testing.assert_array_equal(resumed.trainer.params[name], value, err_msg=name)


def test_a_resume_refuses_another_compute_dtype(tmp_path, config):
    training.train(config, tmp_path / "run", Budget(steps=2), show_progress=False)
    with pytest.raises(bptt.errors.SettingError) as refused:
        training.resume(
            tmp_path / "run", Budget(steps=3), settings={"compute_dtype": "float32"},
            show_progress=False,
        )  # fmt: skip
    assert str(refused.value).startswith("compute_dtype float32: the run in")


@pytest.mark.parametrize("given", [None, "float32"], ids=["none", "the-params-dtype"])
def test_a_resume_takes_the_params_dtype_named_as_no_compute_dtype(tmp_path, config, given):
    plain = replace(config, compute_dtype=given)
    training.train(plain, tmp_path / "run", Budget(steps=2), show_progress=False)
    again = "float32" if given is None else None
    resumed = training.resume(
        tmp_path / "run", Budget(steps=3), settings={"compute_dtype": again}, show_progress=False
    )
    assert resumed.trainer.step_count == 3
    kept = "none" if given is None else given
    with pytest.raises(
        bptt.errors.SettingError, match=rf"^compute_dtype bfloat16: .* has {kept}, "
    ):
        training.resume(
            tmp_path / "run", Budget(steps=4), settings={"compute_dtype": "bfloat16"},
            show_progress=False,
        )  # fmt: skip


def test_bptt_train_refuses_bfloat16_with_float64(config):
    result = bptt_command(
        "train", "--text", config.text, "--steps", "1", "--dtype", "float64",
        "--compute-dtype", "bfloat16",
    )  # fmt: skip
    assert_one_line_error(result, "train", "--compute-dtype", "float32")
