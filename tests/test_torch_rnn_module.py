"""bptt.torch.RNN as a drop-in torch.nn.RNN beyond the numbers: its construction, parameters,
state dict, dropout, in-place use of its outputs, second-order gradients (refused), and its
errors."""

import re

import closeness
import pytest

torch = pytest.importorskip("torch")

from torch.nn.utils.rnn import PackedSequence, pack_sequence

import bptt.torch

SHAPES = {"input_size": 3, "hidden_size": 4}
CONFIGS = [
    {"num_layers": 1},
    {"num_layers": 2, "bidirectional": True},
    {"num_layers": 3, "bias": False, "nonlinearity": "relu"},
]
# The two ways to differentiate a scalar again: into every leaf, or into some only.
DIFFERENTIATE = {
    "backward": lambda scalar, leaf: scalar.backward(),
    "grad": lambda scalar, leaf: torch.autograd.grad(scalar, leaf),
}


def assert_equal_to_rounding(got, expected, steps):
    """A tensor, or tuples of them (output, h_n), equal in float64 to rounding over the steps:
    the same products as nn.RNN's in another order."""
    if not isinstance(expected, tuple):
        got, expected = (got,), (expected,)
    for ours, theirs in zip(got, expected, strict=True):
        closeness.assert_close(ours, theirs, dtype=torch.float64, terms=steps)


@pytest.mark.parametrize("config", CONFIGS)
def test_a_fresh_module_has_nn_rnns_parameters_and_initial_values(config):
    torch.manual_seed(0)
    reference = torch.nn.RNN(**SHAPES, **config)
    torch.manual_seed(0)
    ours = bptt.torch.RNN(**SHAPES, **config)
    expected = dict(reference.named_parameters())
    got = dict(ours.named_parameters())
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name


@pytest.mark.parametrize("config", CONFIGS)
def test_state_dicts_load_both_ways_between_it_and_nn_rnn(config):
    reference = torch.nn.RNN(**SHAPES, **config)
    ours = bptt.torch.RNN(**SHAPES, **config)
    ours.load_state_dict(reference.state_dict())
    inputs = torch.randn(5, 2, 3)
    torch.testing.assert_close(ours(inputs), reference(inputs))

    moved = bptt.torch.RNN(**SHAPES, **config)
    reference.load_state_dict(moved.state_dict())
    torch.testing.assert_close(moved(inputs), reference(inputs))


def test_dropout_between_layers_draws_nn_rnns_masks_in_training_and_none_in_eval():
    config = {"num_layers": 3, "dropout": 0.5, "dtype": torch.float64}
    reference = torch.nn.RNN(**SHAPES, **config)
    ours = bptt.torch.RNN(**SHAPES, **config)
    ours.load_state_dict(reference.state_dict())
    inputs = torch.randn(6, 2, 3, dtype=torch.float64)
    torch.manual_seed(1)
    expected = reference(inputs)
    torch.manual_seed(1)
    got = ours(inputs)
    assert_equal_to_rounding(got, expected, steps=6)

    reference.eval()
    ours.eval()
    assert_equal_to_rounding(ours(inputs), reference(inputs), steps=6)
    assert not torch.allclose(ours(inputs)[0], got[0]), "eval mode drops nothing"


@pytest.mark.parametrize("enforce_sorted", [True, False])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_dropout_on_packed_inputs_draws_nn_rnns_masks_over_the_packed_data(
    bidirectional, enforce_sorted
):
    # nn.RNN drops out a packed sequence's data (one row per step of each sequence), not a
    # padded tensor: other draws, unless taken over the same rows in the same order.
    config = {"num_layers": 3, "dropout": 0.5, "bidirectional": bidirectional}
    reference = torch.nn.RNN(**SHAPES, **config, dtype=torch.float64)
    ours = bptt.torch.RNN(**SHAPES, **config, dtype=torch.float64)
    ours.load_state_dict(reference.state_dict())
    lengths = [3, 6, 1, 4] if not enforce_sorted else [6, 4, 3, 1]
    sequences = [torch.randn(n, 3, dtype=torch.float64) for n in lengths]
    packed = pack_sequence(sequences, enforce_sorted=enforce_sorted)
    outputs, grads = {}, {}
    for name, model in (("reference", reference), ("ours", ours)):
        torch.manual_seed(1)
        output, h_n = model(packed)
        (output.data.sin().sum() + h_n.sum()).backward()
        outputs[name] = (output.data, h_n)
        grads[name] = {key: value.grad for key, value in model.named_parameters()}
    assert_equal_to_rounding(outputs["ours"], outputs["reference"], steps=6)
    for key, grad in grads["reference"].items():
        closeness.assert_close(grads["ours"][key], grad, dtype=torch.float64, terms=6)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("config", CONFIGS)
def test_the_outputs_may_be_changed_in_place_before_backward_as_nn_rnns(config, batch_first):
    # tanh_ is differentiated through its result: the changed output itself.
    models = {
        name: model(**SHAPES, **config, batch_first=batch_first, dtype=torch.float64)
        for name, model in (("reference", torch.nn.RNN), ("ours", bptt.torch.RNN))
    }
    models["ours"].load_state_dict(models["reference"].state_dict())
    inputs = torch.randn(5, 2, 3, dtype=torch.float64)
    weights = torch.randn(2, 5, 2 * 4 if config.get("bidirectional") else 4, dtype=torch.float64)
    grads = {}
    for name, model in models.items():
        output, h_n = model(inputs.transpose(0, 1) if batch_first else inputs)
        output.tanh_()
        h_n.mul_(2)
        batch_major = output if batch_first else output.transpose(0, 1)
        ((batch_major * weights).sum() + h_n.sum()).backward()
        grads[name] = {key: value.grad for key, value in model.named_parameters()}
    for key, expected in grads["reference"].items():
        assert_equal_to_rounding(grads["ours"][key], expected, steps=5)


# torch.compile's own warnings: its import's deprecations, and graph breaks (at nn.RNN's kernel)
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")
def test_a_compiled_model_s_output_may_be_changed_in_place_before_backward_as_nn_rnns():
    # Traced by torch.compile, the output would be a view of the core's buffer, which torch
    # refuses to change in place: the layer runs as it is, outside the compiled graph.
    models = {
        name: model(**SHAPES, dtype=torch.float64)
        for name, model in (("reference", torch.nn.RNN), ("ours", bptt.torch.RNN))
    }
    models["ours"].load_state_dict(models["reference"].state_dict())
    inputs = torch.randn(5, 2, 3, dtype=torch.float64)
    grads = {}
    for name, model in models.items():
        output, h_n = torch.compile(model)(inputs)
        output.mul_(2)
        (output.sum() + h_n.sum()).backward()
        grads[name] = {key: value.grad for key, value in model.named_parameters()}
    for key, expected in grads["reference"].items():
        assert_equal_to_rounding(grads["ours"][key], expected, steps=5)


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("form", ["batched", "unbatched", "packed"])
def test_it_runs_under_inference_mode_as_nn_rnn_does(config, form):
    models = {
        name: model(**SHAPES, **config, dtype=torch.float64)
        for name, model in (("reference", torch.nn.RNN), ("ours", bptt.torch.RNN))
    }
    models["ours"].load_state_dict(models["reference"].state_dict())
    inputs = {
        "batched": torch.randn(5, 2, 3, dtype=torch.float64),
        "unbatched": torch.randn(5, 3, dtype=torch.float64),
        "packed": pack_sequence(
            [torch.randn(steps, 3, dtype=torch.float64) for steps in (5, 2, 4)],
            enforce_sorted=False,
        ),
    }[form]
    outputs = {}
    for name, model in models.items():
        with torch.inference_mode():
            output, h_n = model(inputs)
        outputs[name] = (output.data if form == "packed" else output, h_n)
    assert_equal_to_rounding(outputs["ours"], outputs["reference"], steps=5)


def test_inputs_changed_in_place_before_backward_are_refused_as_by_nn_rnn():
    inputs = torch.randn(5, 2, 3, requires_grad=True)
    for model in (torch.nn.RNN, bptt.torch.RNN):
        layer_input = inputs * 1
        output, _ = model(**SHAPES)(layer_input)
        layer_input.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            output.sum().backward()


def test_non_finite_inputs_propagate_like_torchs_instead_of_raising():
    rnn = bptt.torch.RNN(**SHAPES)
    inputs = torch.randn(4, 2, 3)
    inputs[1, 0, 0] = float("nan")
    output, _ = rnn(inputs)
    assert output[1:, 0].isnan().all()
    assert not output[:, 1].isnan().any()


@pytest.mark.parametrize(
    ("device", "dtype"),
    [("meta", torch.float32), ("cpu", torch.float16), ("cpu", torch.int64)],
)
def test_inputs_off_the_cpu_or_of_another_type_are_refused_naming_input(device, dtype):
    rnn = bptt.torch.RNN(**SHAPES)
    inputs = torch.zeros(5, 2, 3, device=device, dtype=dtype)
    with pytest.raises(TypeError, match=r"^input: expected"):
        rnn(inputs)


def test_half_precision_weights_are_refused_naming_the_weight():
    rnn = bptt.torch.RNN(**SHAPES).half()
    with pytest.raises(TypeError, match=r"^weight_ih_l0: expected dtype"):
        rnn(torch.zeros(5, 2, 3, dtype=torch.float16))


def test_hx_of_another_dtype_than_the_weights_is_refused_naming_hx():
    rnn = bptt.torch.RNN(**SHAPES)
    with pytest.raises(TypeError, match=r"^hx: expected dtype torch.float32"):
        rnn(torch.zeros(5, 2, 3), torch.zeros(1, 2, 4, dtype=torch.float64))


@pytest.mark.parametrize(
    ("inputs", "hx"),
    [
        (torch.zeros(5, 2, 3, dtype=torch.float64), None),  # input dtype unlike the weights'
        (torch.zeros(5, 2, 7), None),  # input size
        (torch.zeros(5, 2, 3), torch.zeros(1, 3, 4)),  # batch of hx
        (torch.zeros(5, 2, 3), torch.zeros(2, 4)),  # 2-d hx for batched input
        (torch.zeros(5, 3), torch.zeros(1, 2, 4)),  # 3-d hx for unbatched input
        (torch.zeros(1, 5, 2, 3), None),  # 4-d input
    ],
    ids=["dtype", "input-size", "hx-batch", "hx-2d", "hx-3d", "input-4d"],
)
def test_shape_and_dtype_mismatches_raise_what_nn_rnn_raises(inputs, hx):
    with pytest.raises((ValueError, RuntimeError)) as expected:
        torch.nn.RNN(**SHAPES)(inputs, hx)
    with pytest.raises(expected.type, match=f"^{re.escape(str(expected.value))}$"):
        bptt.torch.RNN(**SHAPES)(inputs, hx)


@pytest.mark.parametrize(
    ("batch_first", "inputs", "hx", "layout"),
    [
        (False, torch.zeros(0, 2, 3), None, r"\(T, B, input_size\), got \(0, 2, 3\)"),
        (False, torch.zeros(0, 2, 3), torch.zeros(1, 2, 4), r"\(T, B, input_size\)"),
        (True, torch.zeros(2, 0, 3), None, r"\(B, T, input_size\), got \(2, 0, 3\)"),
        (False, torch.zeros(0, 3), None, r"\(T, input_size\), got \(0, 3\)"),
        (True, torch.zeros(0, 3), None, r"\(T, input_size\), got \(0, 3\)"),
    ],
    ids=["time-major", "time-major-with-hx", "batch-first", "unbatched", "unbatched-batch-first"],
)
def test_input_of_zero_time_steps_raises_nn_rnns_error_type_naming_input(
    batch_first, inputs, hx, layout
):
    # nn.RNN refuses T = 0 rather than return h_n = hx; so must a drop-in.
    with pytest.raises(RuntimeError) as expected:
        torch.nn.RNN(**SHAPES, batch_first=batch_first)(inputs, hx)
    with pytest.raises(
        expected.type, match=rf"^input: expected at least one time step, T > 0 in shape {layout}"
    ):
        bptt.torch.RNN(**SHAPES, batch_first=batch_first)(inputs, hx)


def test_a_packed_sequence_of_zero_time_steps_raises_nn_rnns_error_type_naming_input():
    # pack_sequence refuses empty sequences: only a hand-built PackedSequence gets here.
    packed = PackedSequence(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64))
    with pytest.raises(IndexError) as expected:
        torch.nn.RNN(**SHAPES)(packed)
    with pytest.raises(expected.type, match=r"^input: expected a PackedSequence of at least one"):
        bptt.torch.RNN(**SHAPES)(packed)


@pytest.mark.parametrize(
    "batch_sizes",
    [[3, -1, 1], [1, 3], [2, 2], [5], [2, 1, 1, 1]],
    ids=["negative", "increasing", "summing-to-more", "more-than-data", "summing-past-data"],
)
def test_a_packed_sequence_of_invalid_batch_sizes_raises_nn_rnns_error_type_naming_them(
    batch_sizes,
):
    # torch's pad_packed_sequence aborts the process on a negative one: checked before it.
    packed = PackedSequence(torch.randn(3, 3), torch.tensor(batch_sizes))
    with pytest.raises(RuntimeError):
        torch.nn.RNN(**SHAPES)(packed)
    with pytest.raises(RuntimeError, match=r"^input: expected a PackedSequence whose batch_sizes"):
        bptt.torch.RNN(**SHAPES)(packed)


@pytest.mark.parametrize("batch_sizes", [[0], [0, 0]])
def test_a_packed_sequence_of_no_sequence_gives_nn_rnns_empty_output(batch_sizes):
    packed = PackedSequence(torch.zeros(0, 3), torch.tensor(batch_sizes))
    expected_output, expected_h_n = torch.nn.RNN(**SHAPES)(packed)
    output, h_n = bptt.torch.RNN(**SHAPES)(packed)
    assert output.data.shape == expected_output.data.shape
    assert h_n.shape == expected_h_n.shape


@pytest.mark.parametrize(
    "first_order",
    [lambda output: output.sum(), lambda output: output.pow(2).sum()],
    ids=["upstream-of-ones", "upstream-needing-grad"],
)
@pytest.mark.parametrize("differentiate", DIFFERENTIATE)
def test_differentiating_its_gradients_again_raises_instead_of_dropping_second_order_terms(
    first_order, differentiate
):
    # The core's backward is no torch graph: a gradient penalty through it would silently lose
    # its second-order terms, whatever the upstream gradient and however it is differentiated.
    rnn = bptt.torch.RNN(**SHAPES, dtype=torch.float64)
    inputs = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    output, _ = rnn(inputs)
    (d_inputs,) = torch.autograd.grad(first_order(output), inputs, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        DIFFERENTIATE[differentiate](d_inputs.pow(2).sum() + output.sum(), inputs)


def test_gradients_taken_with_create_graph_are_the_first_order_gradients():
    rnn = bptt.torch.RNN(**SHAPES, num_layers=2, dtype=torch.float64)
    inputs = torch.randn(5, 2, 3, dtype=torch.float64, requires_grad=True)
    output, h_n = rnn(inputs)
    leaves = [inputs, *rnn.parameters()]
    plain = torch.autograd.grad(output.sum() + h_n.sum(), leaves, retain_graph=True)
    with_graph = torch.autograd.grad(output.sum() + h_n.sum(), leaves, create_graph=True)
    for expected, got in zip(plain, with_graph, strict=True):
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_sparse_input_is_refused_naming_input_and_asking_for_a_dense_tensor():
    rnn = bptt.torch.RNN(**SHAPES)
    with pytest.raises(TypeError, match=r"^input: expected a dense \(strided\) tensor"):
        rnn(torch.zeros(5, 2, 3).to_sparse())


@pytest.mark.filterwarnings("ignore::UserWarning")  # both kinds are prototypes or deprecated
def test_nested_and_quantized_inputs_are_refused_naming_input():
    rnn = bptt.torch.RNN(**SHAPES)
    with pytest.raises(
        TypeError, match=r"^input: expected a dense \(strided\) tensor, got a nested"
    ):
        rnn(torch.nested.nested_tensor([torch.zeros(5, 3), torch.zeros(2, 3)]))
    with pytest.raises(TypeError, match=r"^input: .*got a quantized one"):
        rnn(torch.quantize_per_tensor(torch.zeros(5, 2, 3), 0.1, 0, torch.quint8))


@pytest.mark.parametrize(
    ("name", "shape"),
    [("weight_ih_l0", (4, 5)), ("weight_hh_l1", (4, 5)), ("bias_ih_l1_reverse", (3,))],
)
def test_a_weight_of_another_shape_is_refused_naming_the_weight(name, shape):
    rnn = bptt.torch.RNN(**SHAPES, num_layers=2, bidirectional=True)
    setattr(rnn, name, torch.nn.Parameter(torch.zeros(shape)))
    expected = tuple(
        torch.nn.RNN(**SHAPES, num_layers=2, bidirectional=True).get_parameter(name).shape
    )
    with pytest.raises(
        RuntimeError, match=re.escape(f"{name}: expected shape {expected}, got {shape}")
    ):
        rnn(torch.zeros(5, 2, 3))


def test_a_sparse_weight_is_refused_naming_the_weight():
    rnn = bptt.torch.RNN(**SHAPES)
    rnn.weight_hh_l0 = torch.nn.Parameter(rnn.weight_hh_l0.detach().to_sparse())
    with pytest.raises(TypeError, match=r"^weight_hh_l0: expected a dense \(strided\) tensor"):
        rnn(torch.zeros(5, 2, 3))


@pytest.mark.parametrize("enforce_sorted", [True, False], ids=["sorted", "unsorted"])
def test_packed_input_with_hx_of_another_batch_size_is_refused_naming_hx(enforce_sorted):
    # Unsorted, nn.RNN's permutation of hx would silently pick 2 of its 3 rows.
    rnn = bptt.torch.RNN(**SHAPES)
    sequences = [torch.randn(2, 3), torch.randn(4, 3)]
    packed = pack_sequence(sequences[::-1] if enforce_sorted else sequences, enforce_sorted)
    with pytest.raises(
        RuntimeError, match=r"^hx: expected shape .* = \(1, 2, 4\), got \[1, 3, 4\]"
    ):
        rnn(packed, torch.zeros(1, 3, 4))


def test_torch_func_functional_call_runs_it_with_the_given_parameters():
    reference = torch.nn.RNN(**SHAPES, num_layers=2, dtype=torch.float64)
    ours = bptt.torch.RNN(**SHAPES, num_layers=2, dtype=torch.float64)
    inputs = torch.randn(5, 2, 3, dtype=torch.float64)
    got = torch.func.functional_call(ours, dict(reference.named_parameters()), (inputs,))
    assert_equal_to_rounding(got, reference(inputs), steps=5)
