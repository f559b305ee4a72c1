"""The compiled core against the NumPy oracle on randomized problems, in float32 and float64.

Hypothesis draws the shapes, the flags and a seed; the arrays come from
np.random.default_rng(seed). The oracle runs in float64 on exactly the values the core sees
(float32 arrays are widened, not redrawn), so every difference is the core's own rounding.

Tolerance: closeness.tolerance over the T + 1 steps, for the whole array, where scale is the
largest entry of the same computation done on absolute values. For a gradient that is a sum
over steps and batch rows (dW = sum_t da_t h_{t-1}^T, ...) this is the largest entry of
sum_t |da_t| |h_{t-1}|^T, which, unlike the max-abs of dW itself, stays meaningful when the
sum cancels.
"""

from typing import NamedTuple

import closeness
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bptt
from bptt import _model, reference

ACTIVATIONS = _model.ACTIVATIONS
PARAM_NAMES = _model.PARAM_NAMES

# CI-reproducible: the same 150 examples on every run, nothing written to .hypothesis/.
settings.register_profile(
    "bptt-oracle",
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
ORACLE_SETTINGS = settings.get_profile("bptt-oracle")


class Config(NamedTuple):
    steps: int
    batch: int
    input_size: int
    hidden_size: int
    output_size: int
    activation: str
    tokens: bool
    soft_targets: bool
    ignore_probability: float
    use_h0: bool
    reduction: str
    dtype: type
    seed: int


def sizes(low, high):
    # sampled_from draws near-uniformly; st.integers favours the bounds, which made 40% of the
    # examples empty (T = 0 or B = 0), a case test_edge_cases.py covers exhaustively anyway
    return st.sampled_from(range(low, high + 1))


@st.composite
def configs(draw, max_steps=40, max_batch=8, max_size=40):
    return Config(
        steps=draw(sizes(0, max_steps)),
        batch=draw(sizes(0, max_batch)),
        input_size=draw(sizes(1, max_size)),
        hidden_size=draw(sizes(1, max_size)),
        output_size=draw(sizes(1, max_size)),
        activation=draw(st.sampled_from(ACTIVATIONS)),
        tokens=draw(st.booleans()),
        soft_targets=draw(st.booleans()),
        ignore_probability=draw(st.sampled_from([0.0, 0.3, 1.0])),
        use_h0=draw(st.booleans()),
        reduction=draw(st.sampled_from(["sum", "mean"])),
        dtype=draw(st.sampled_from([np.float32, np.float64])),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


class Problem(NamedTuple):
    params: dict
    inputs: np.ndarray  # float (T, B, D) or token ids (T, B)
    targets: np.ndarray  # class ids (T, B) with -1 = ignored, or soft targets (T, B, O)
    h0: np.ndarray | None


def make_problem(cfg: Config) -> Problem:
    """Params uniform in ±1/sqrt(H) as init_params draws them; inputs of unit pre-activation
    scale (x ~ N(0, 1/D)), so that the activation is not saturated and the tolerances stay meaningful."""
    rng = np.random.default_rng(cfg.seed)
    T, B, D, H, O = cfg.steps, cfg.batch, cfg.input_size, cfg.hidden_size, cfg.output_size
    bound = 1.0 / np.sqrt(H)
    shapes = _model.parameter_shapes(D, H, O)
    params = {k: rng.uniform(-bound, bound, shape).astype(cfg.dtype) for k, shape in shapes.items()}
    if cfg.tokens:
        inputs = rng.integers(0, D, (T, B))
    else:
        inputs = (rng.standard_normal((T, B, D)) / np.sqrt(D)).astype(cfg.dtype)
    if cfg.soft_targets:
        targets = rng.random((T, B, O)).astype(cfg.dtype)  # non-negative, not summing to 1
    else:
        targets = rng.integers(0, O, (T, B))
        targets[rng.random((T, B)) < cfg.ignore_probability] = -1
    h0 = rng.uniform(-1, 1, (B, H)).astype(cfg.dtype) if cfg.use_h0 else None
    return Problem(params, inputs, targets, h0)


def widened(problem: Problem) -> Problem:
    """The same values in float64, for the oracle."""

    def f64(a):
        return a if a is None or a.dtype.kind in "iu" else a.astype(np.float64)

    return Problem(
        {k: f64(v) for k, v in problem.params.items()},
        f64(problem.inputs),
        f64(problem.targets),
        f64(problem.h0),
    )


# ---------------------------------------------------------------------------------------------
# A plain NumPy BPTT of the recurrent layer (float64), for the pre-activation gradients da_t
# behind the absolute-value scales of the tolerances.


def dense_inputs(inputs, D):
    """Float inputs as they are, token ids as one-hot rows."""
    if inputs.dtype.kind in "iu":
        return (inputs[..., None] == np.arange(D)).astype(np.float64)
    return inputs.astype(np.float64)


def real_steps(lengths, T, B):
    """(T, B, 1): whether step t is one of sequence b's real steps (every step without lengths)."""
    if lengths is None:
        return np.ones((T, B, 1), bool)
    return (np.arange(T)[:, None] < lengths)[..., None]


def run_order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def previous_states(h0, hidden, reverse):
    """The state each step reads, (T, B, H): h_{t-1} (h_{t+1} reversed), h_0 at the first."""
    if reverse:
        return np.concatenate([hidden[1:], h0[None]])
    return np.concatenate([h0[None], hidden[:-1]])


def numpy_layer_forward(params, x, h0, activation, lengths=None, reverse=False):
    """Pre-activations a_t and hidden states h_t, (T, B, H) each; a padded step keeps the state
    it reads."""
    sigma, _ = reference.ACTIVATIONS[activation]
    U, W, b = params["U"], params["W"], params["b"]
    T, B = x.shape[:2]
    real = real_steps(lengths, T, B)
    a = np.zeros((T, B, W.shape[0]))
    hidden = np.zeros_like(a)
    h = np.zeros((B, W.shape[0])) if h0 is None else h0
    for t in run_order(T, reverse):
        a[t] = b + h @ W.T + x[t] @ U.T
        hidden[t] = h = np.where(real[t], sigma(a[t]), h)
    return a, hidden


def numpy_layer_backward(
    params, x, h0, a, hidden, activation, d_hidden=None, d_h_last=None, lengths=None, reverse=False
):
    """dL/d(U, W, b, h0, x) and the pre-activation gradients da (T, B, H), given dL/dh_t for
    every t (d_hidden, ignored at padded steps) and dL/dh_last (d_h_last), by the recursion of
    Goodfellow 10.2.2 run through the steps in the reverse of their order."""
    _, dsigma = reference.ACTIVATIONS[activation]
    U, W = params["U"], params["W"]
    T, B, H = a.shape
    h0 = np.zeros((B, H)) if h0 is None else h0
    real = real_steps(lengths, T, B)
    up = np.zeros_like(a) if d_hidden is None else d_hidden * real
    da = np.zeros_like(a)
    later = np.zeros((B, H)) if d_h_last is None else d_h_last  # dL/dh from the later steps
    for t in reversed(run_order(T, reverse)):
        dh = up[t] + later
        da[t] = np.where(real[t], dh * dsigma(a[t]), 0.0)
        later = np.where(real[t], da[t] @ W, dh)  # a padded step passes dL/dh on
    grads = {
        "U": np.einsum("tbi,tbj->ij", da, x),
        "W": np.einsum("tbi,tbj->ij", da, previous_states(h0, hidden, reverse)),
        "b": da.sum(axis=(0, 1)),
        "h0": later,
        "x": da @ U,
    }
    return grads, da


def layer_gradient_scales(params, x, h0, hidden, da, d_h_last=None, reverse=False):
    """The layer's gradients computed on absolute values (see the module docstring). dL/dh_0 is
    W^T da_t at the first step a sequence runs (bounded here by the largest over all steps), or
    d_h_last itself for a sequence without a real step."""
    _, B, H = da.shape
    h0 = np.zeros((B, H)) if h0 is None else h0
    da = np.abs(da)
    passed_on = 0.0 if d_h_last is None else np.max(np.abs(d_h_last), initial=0.0)
    return {
        "U": np.einsum("tbi,tbj->ij", da, np.abs(x)),
        "W": np.einsum("tbi,tbj->ij", da, np.abs(previous_states(h0, hidden, reverse))),
        "b": da.sum(axis=(0, 1)),
        "h0": max(np.max(da @ np.abs(params["W"]), initial=0.0), passed_on),
        "x": da @ np.abs(params["U"]),
    }


def soft_target_matrix(targets, O):
    """Integer ids as one-hot rows (zero rows for -1), soft targets as they are; float64."""
    if targets.dtype.kind in "iu":
        return (targets[..., None] == np.arange(O)).astype(np.float64)
    return targets.astype(np.float64)


def head_scales(params, hidden, logits, targets, loss, reduction):
    """dL/do_t (T, B, O) of the softmax head (float64), and the absolute-value scales of its
    loss and of its gradients V, c and d_hidden = dL/dh_t."""
    V = params["V"]
    T, B, O = logits.shape
    y = soft_target_matrix(targets, O)
    counted = np.count_nonzero(targets != -1) if targets.dtype.kind in "iu" else T * B
    scale = 1.0 if reduction == "sum" or counted == 0 else 1.0 / counted
    if reduction == "mean" and counted == 0:
        scale = 0.0
    # dL/do_t = scale (softmax(o_t) sum(y_t) - y_t), then dL/dh_t = V^T dL/do_t
    shifted = logits - logits.max(axis=-1, keepdims=True, initial=-np.inf)
    prob = np.exp(shifted) / np.exp(shifted).sum(axis=-1, keepdims=True)
    d_logits = scale * (prob * y.sum(axis=-1, keepdims=True) - y)
    abs_d_logits, abs_hidden = np.abs(d_logits), np.abs(hidden)
    # each row's loss is sum(y) logsumexp(o) - y.o: its rounding scales with |y| |o|
    largest_logit = np.abs(logits).max(axis=-1, initial=0.0)
    scales = {
        "loss": abs(loss) + scale * float(np.sum(y.sum(axis=-1) * largest_logit)),
        "V": np.einsum("tbo,tbh->oh", abs_d_logits, abs_hidden),
        "c": abs_d_logits.sum(axis=(0, 1)),
        "d_hidden": abs_d_logits @ np.abs(V),
    }
    return d_logits, scales


def oracle_with_scales(problem: Problem, activation, reduction):
    """The oracle's loss_and_grad and forward (float64), and the absolute-value scale of each."""
    p = widened(problem)
    oracle = reference.loss_and_grad(
        p.params, p.inputs, p.targets, h0=p.h0, activation=activation, reduction=reduction
    )
    fwd = reference.forward(p.params, p.inputs, h0=p.h0, activation=activation)
    d_logits, head = head_scales(
        p.params, fwd.hidden, fwd.logits, p.targets, oracle.loss, reduction
    )
    x = dense_inputs(p.inputs, p.params["U"].shape[1])
    a, hidden = numpy_layer_forward(p.params, x, p.h0, activation)
    _, da = numpy_layer_backward(p.params, x, p.h0, a, hidden, activation, d_logits @ p.params["V"])
    scales = layer_gradient_scales(p.params, x, p.h0, hidden, da)
    if p.inputs.dtype.kind in "iu":
        del scales["x"]
    scales["V"], scales["c"] = head["V"], head["c"]
    forward_scales = {
        "hidden": np.abs(fwd.hidden),
        "logits": np.abs(p.params["c"]) + np.abs(fwd.hidden) @ np.abs(p.params["V"]).T,
        "h_last": np.abs(fwd.h_last),
    }
    return oracle, fwd, head["loss"], scales, forward_scales


def assert_close(actual, expected, scale, dtype, steps, name):
    """Of the dtype, and equal to rounding over the T + 1 steps at the scale given; exact when
    the scale is 0."""
    actual = np.asarray(actual)
    assert actual.dtype == np.dtype(dtype) or actual.ndim == 0, name
    closeness.assert_close(actual, expected, dtype=dtype, terms=steps + 1, scale=scale, name=name)


def h0_or_zeros(problem: Problem, H):
    B = problem.targets.shape[1]
    return np.zeros((B, H), problem.params["U"].dtype) if problem.h0 is None else problem.h0


# ---------------------------------------------------------------------------------------------
# The whole model against the oracle.


@ORACLE_SETTINGS
@given(configs())
def test_loss_and_grad_matches_the_oracle(cfg):
    problem = make_problem(cfg)

    result = bptt.loss_and_grad(
        problem.params,
        problem.inputs,
        problem.targets,
        h0=problem.h0,
        activation=cfg.activation,
        reduction=cfg.reduction,
    )
    oracle, _, loss_scale, scales, forward_scales = oracle_with_scales(
        problem, cfg.activation, cfg.reduction
    )

    assert isinstance(result.loss, float)
    assert_close(result.loss, oracle.loss, loss_scale, cfg.dtype, cfg.steps, "loss")
    assert result.grads.keys() == oracle.grads.keys()
    for name, grad in oracle.grads.items():
        assert_close(result.grads[name], grad, scales[name], cfg.dtype, cfg.steps, name)
    assert_close(
        result.h_last, oracle.h_last, forward_scales["h_last"], cfg.dtype, cfg.steps, "h_last"
    )


@ORACLE_SETTINGS
@given(configs())
def test_forward_matches_the_oracle(cfg):
    problem = make_problem(cfg)

    out = bptt.forward(problem.params, problem.inputs, h0=problem.h0, activation=cfg.activation)
    _, fwd, _, _, forward_scales = oracle_with_scales(problem, cfg.activation, "sum")

    for name in ("hidden", "logits", "h_last"):
        assert_close(
            getattr(out, name), getattr(fwd, name), forward_scales[name], cfg.dtype, cfg.steps, name
        )


# ---------------------------------------------------------------------------------------------
# The recurrent layer and the softmax head, each on its own, against the oracle.


@st.composite
def layer_configs(draw):
    """A problem, the layer's own options (per-sequence lengths or none, the direction), and
    which upstream gradients reach it: dL/dh_t for every step, dL/dh_last, or both."""
    upstream = draw(st.sampled_from(["d_hidden", "d_h_last", "both"]))
    return draw(configs()), draw(st.booleans()), draw(st.booleans()), upstream


def lengths_of(cfg: Config, padded: bool):
    """Random lengths in [0, T], one a sequence, for a padded batch; None for a full one."""
    rng = np.random.default_rng(cfg.seed + 4)
    return rng.integers(0, cfg.steps + 1, cfg.batch) if padded else None


def upstream_gradients(cfg: Config, upstream: str):
    """Random dL/dh_t (T, B, H) and dL/dh_last (B, H) of the problem's dtype, or None for the
    one that `upstream` leaves out."""
    rng = np.random.default_rng(cfg.seed + 2)
    T, B, H = cfg.steps, cfg.batch, cfg.hidden_size
    d_hidden = rng.standard_normal((T, B, H)).astype(cfg.dtype)
    d_h_last = rng.standard_normal((B, H)).astype(cfg.dtype)
    return (
        None if upstream == "d_h_last" else d_hidden,
        None if upstream == "d_hidden" else d_h_last,
    )


def widened_or_none(array):
    return None if array is None else array.astype(np.float64)


def random_hidden(cfg: Config):
    """Hidden states (T, B, H) in [-1, 1], the range of tanh, for the head alone."""
    rng = np.random.default_rng(cfg.seed + 3)
    return rng.uniform(-1, 1, (cfg.steps, cfg.batch, cfg.hidden_size)).astype(cfg.dtype)


@ORACLE_SETTINGS
@given(layer_configs())
def test_layer_forward_matches_the_oracle(layer_cfg):
    cfg, padded, reverse, _ = layer_cfg
    problem, lengths = make_problem(cfg), lengths_of(cfg, padded)
    options = {"activation": cfg.activation, "lengths": lengths, "reverse": reverse}

    result = bptt.layer_forward(problem.params, problem.inputs, h0=problem.h0, **options)
    p = widened(problem)
    oracle = reference.layer_forward(p.params, p.inputs, h0=p.h0, **options)

    assert isinstance(result, bptt.LayerForwardResult)
    for name in ("hidden", "h_last"):
        expected = getattr(oracle, name)
        assert_close(getattr(result, name), expected, np.abs(expected), cfg.dtype, cfg.steps, name)


@ORACLE_SETTINGS
@given(layer_configs())
def test_layer_backward_matches_the_oracle(layer_cfg):
    cfg, padded, reverse, upstream = layer_cfg
    problem, lengths = make_problem(cfg), lengths_of(cfg, padded)
    d_hidden, d_h_last = upstream_gradients(cfg, upstream)
    options = {"activation": cfg.activation, "lengths": lengths, "reverse": reverse}

    hidden = bptt.layer_forward(problem.params, problem.inputs, h0=problem.h0, **options).hidden
    grads = bptt.layer_backward(
        problem.params,
        problem.inputs,
        hidden,
        h0=problem.h0,
        d_hidden=d_hidden,
        d_h_last=d_h_last,
        **options,
    )
    p = widened(problem)
    d_hidden64, d_h_last64 = widened_or_none(d_hidden), widened_or_none(d_h_last)
    hidden64 = reference.layer_forward(p.params, p.inputs, h0=p.h0, **options).hidden
    expected = reference.layer_backward(
        p.params, p.inputs, hidden64, h0=p.h0, d_hidden=d_hidden64, d_h_last=d_h_last64, **options
    )
    x = dense_inputs(p.inputs, cfg.input_size)
    a, _ = numpy_layer_forward(p.params, x, p.h0, cfg.activation, lengths, reverse)
    _, da = numpy_layer_backward(
        p.params, x, p.h0, a, hidden64, cfg.activation, d_hidden64, d_h_last64, lengths, reverse
    )
    scales = layer_gradient_scales(p.params, x, p.h0, hidden64, da, d_h_last64, reverse)

    assert (
        grads.keys() == expected.keys() == {"U", "W", "b", "h0"} | (set() if cfg.tokens else {"x"})
    )
    for name, grad in expected.items():
        assert_close(grads[name], grad, scales[name], cfg.dtype, cfg.steps, name)


@ORACLE_SETTINGS
@given(configs())
def test_head_logits_match_the_oracle(cfg):
    problem, hidden = make_problem(cfg), random_hidden(cfg)

    logits = bptt.head_logits(problem.params, hidden)

    p = widened(problem)
    hidden64 = hidden.astype(np.float64)
    expected = reference.head_logits(p.params, hidden64)
    scale = np.abs(p.params["c"]) + np.abs(hidden64) @ np.abs(p.params["V"]).T
    # a dot product of H terms, not a sum over steps: H plays the part of T + 1
    assert_close(logits, expected, scale, cfg.dtype, cfg.hidden_size - 1, "logits")


@ORACLE_SETTINGS
@given(configs())
def test_head_loss_and_grad_matches_the_oracle(cfg):
    problem, hidden = make_problem(cfg), random_hidden(cfg)

    result = bptt.head_loss_and_grad(
        problem.params, hidden, problem.targets, reduction=cfg.reduction
    )

    p = widened(problem)
    hidden64 = hidden.astype(np.float64)
    expected = reference.head_loss_and_grad(p.params, hidden64, p.targets, reduction=cfg.reduction)
    logits = reference.head_logits(p.params, hidden64)
    _, scales = head_scales(p.params, hidden64, logits, p.targets, expected.loss, cfg.reduction)
    assert isinstance(result, bptt.HeadLossAndGrad)
    assert isinstance(result.loss, float)
    # the sums of loss_and_grad's head, judged as there
    assert_close(result.loss, expected.loss, scales["loss"], cfg.dtype, cfg.steps, "loss")
    assert result.grads.keys() == expected.grads.keys() == {"V", "c"}
    for name, grad in expected.grads.items():
        assert_close(result.grads[name], grad, scales[name], cfg.dtype, cfg.steps, name)
    # dL/dh_t = V^T dL/do_t: a dot product of O terms
    assert_close(
        result.d_hidden,
        expected.d_hidden,
        scales["d_hidden"],
        cfg.dtype,
        cfg.output_size - 1,
        "d_hidden",
    )


@ORACLE_SETTINGS
@given(configs())
def test_layer_forward_then_head_then_layer_backward_equal_loss_and_grad(cfg):
    problem = make_problem(cfg)
    options = {"h0": problem.h0, "activation": cfg.activation}

    layer = bptt.layer_forward(problem.params, problem.inputs, **options)
    head = bptt.head_loss_and_grad(
        problem.params, layer.hidden, problem.targets, reduction=cfg.reduction
    )
    layer_grads = bptt.layer_backward(
        problem.params, problem.inputs, layer.hidden, d_hidden=head.d_hidden, **options
    )
    whole = bptt.loss_and_grad(
        problem.params, problem.inputs, problem.targets, reduction=cfg.reduction, **options
    )
    _, _, loss_scale, scales, _ = oracle_with_scales(problem, cfg.activation, cfg.reduction)

    assert layer.hidden.shape == (cfg.steps, cfg.batch, cfg.hidden_size)
    # (equal up to rounding only: see test_determinism.py on what the core's bits depend on)
    assert_close(layer.h_last, whole.h_last, np.abs(whole.h_last), cfg.dtype, cfg.steps, "h_T")
    assert_close(head.loss, whole.loss, loss_scale, cfg.dtype, cfg.steps, "loss")
    composed = layer_grads | head.grads
    assert composed.keys() == whole.grads.keys()
    for name, grad in whole.grads.items():
        assert_close(composed[name], grad, scales[name], cfg.dtype, cfg.steps, name)


@pytest.mark.parametrize("tokens", [False, True])
def test_layer_backward_without_upstream_gradients_gives_zero_gradients(tokens):
    cfg = Config(5, 3, 4, 6, 2, "tanh", tokens, False, 0.0, True, "sum", np.float64, 7)
    problem = make_problem(cfg)
    hidden = bptt.layer_forward(problem.params, problem.inputs, h0=problem.h0).hidden

    grads = bptt.layer_backward(problem.params, problem.inputs, hidden, h0=problem.h0)

    assert grads.keys() == {"U", "W", "b", "h0"} | (set() if tokens else {"x"})
    for name, grad in grads.items():
        assert not grad.any(), name


def test_layer_forward_starts_from_h0_and_from_zeros_without_it():
    cfg = Config(5, 3, 4, 6, 2, "tanh", False, False, 0.0, True, "sum", np.float64, 8)
    problem = make_problem(cfg)
    H = cfg.hidden_size

    for reverse in (False, True):
        empty = problem.inputs[:0]
        assert np.array_equal(
            bptt.layer_forward(problem.params, empty, h0=problem.h0, reverse=reverse).h_last,
            h0_or_zeros(problem, H),
        )
        assert not bptt.layer_forward(problem.params, empty, reverse=reverse).h_last.any()


@pytest.mark.parametrize("reverse", [False, True], ids=["forward", "reverse"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_the_numpy_bptt_of_this_file_matches_finite_differences(activation, reverse):
    """The helper behind the tolerances of the layer_backward tests is itself right: central
    differences of L = sum(G_t ⊙ h_t over real steps) + sum(G ⊙ h_last) in float64 on a tiny
    problem whose second sequence has one real step of three."""
    cfg = Config(3, 2, 2, 3, 1, activation, False, False, 0.0, True, "sum", np.float64, 11)
    problem = make_problem(cfg)
    rng = np.random.default_rng(12)
    d_hidden = rng.standard_normal((3, 2, 3))
    d_h_last = rng.standard_normal((2, 3))
    lengths = np.array([3, 1])
    real = real_steps(lengths, 3, 2)
    x0 = problem.inputs

    def loss_of(v):
        params = {"U": v["U"], "W": v["W"], "b": v["b"]}
        _, hidden = numpy_layer_forward(params, v["x"], v["h0"], activation, lengths, reverse)
        h_last = hidden[0] if reverse else hidden[-1]
        return float(np.sum(d_hidden * hidden * real) + np.sum(d_h_last * h_last))

    variables = {k: problem.params[k].copy() for k in ("U", "W", "b")}
    variables.update(h0=problem.h0.copy(), x=x0.copy())
    a, hidden = numpy_layer_forward(variables, x0, problem.h0, activation, lengths, reverse)
    grads, _ = numpy_layer_backward(
        variables, x0, problem.h0, a, hidden, activation, d_hidden, d_h_last, lengths, reverse
    )
    step = 1e-6
    # relu's kink is not within a step of these pre-activations (checked by the result)
    tolerance = closeness.finite_difference_tolerance(loss_of(variables), step)
    for name, value in variables.items():
        for i in np.ndindex(value.shape):
            original = value[i]
            value[i] = original + step
            up = loss_of(variables)
            value[i] = original - step
            down = loss_of(variables)
            value[i] = original
            assert grads[name][i] == pytest.approx((up - down) / (2 * step), abs=tolerance), name
