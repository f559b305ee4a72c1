"""The benchmark's oneDNN peer (bench/peers/onednn_rnn.py): oneDNN's vanilla RNN primitive
computes the states and every gradient of bptt's recurrent layer on the same arrays, call after
call; without oneDNN or a compiler it is skipped with a note saying why; and the layer comparison
times a layer peer only when it agrees with bptt."""

import importlib.metadata
import sys
from pathlib import Path

import numpy as np
import pytest

# bench/ is a folder of scripts, not a package: its modules import each other by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import peers
from comparison import layer
from comparison.agreement import layer_tolerance
from comparison.problem import LayerProblem
from comparison.timing_child import load_implementations
from peers import onednn_rnn


def odd_problem() -> LayerProblem:
    """Sizes no library would block evenly: T = 7, B = 3, D = 5, H = 6."""
    T, B, D, H = 7, 3, 5, 6
    rng = np.random.default_rng(3)

    def normal(*shape, scale=1.0):
        return (scale * rng.standard_normal(shape)).astype(np.float32)

    return LayerProblem(
        "odd",
        (T, B, D, H),
        U=normal(H, D, scale=0.4),
        W=normal(H, H, scale=0.4),
        b=normal(H, scale=0.1),
        inputs=normal(T, B, D),
        h0=np.tanh(normal(B, H)),
        d_hidden=normal(T, B, H),
        d_h_last=normal(B, H),
    )


@pytest.fixture(scope="module")
def onednn():
    note = onednn_rnn.unavailable()
    if note:
        pytest.skip(note)
    onednn_rnn.set_threads(1)
    return onednn_rnn


def bptt_layer(problem: LayerProblem) -> dict:
    runner = peers.load(peers.SUBJECT).LayerRunner(problem)
    runner()
    hidden, grads = runner.result()
    return {"hidden": hidden, **grads}


def onednn_layer(module, problem: LayerProblem, calls: int = 1) -> dict:
    runner = module.LayerRunner(problem)
    for _ in range(calls):
        runner()
    hidden, grads = runner.result()
    return {"hidden": hidden, **grads}


@pytest.mark.parametrize("make", [odd_problem, lambda: LayerProblem.make("charrnn")])
def test_onednn_computes_the_states_and_every_gradient_of_bptts_layer(onednn, make):
    problem = make()
    want = bptt_layer(problem)
    got = onednn_layer(onednn, problem)
    assert set(got) == set(want) == {"hidden", "U", "W", "b", "h0", "x"}
    # The float32 tolerance the comparison holds the peer to, derived from the sizes.
    tolerance = layer_tolerance(*problem.shape)
    for name, array in want.items():
        scale = np.max(np.abs(array))
        np.testing.assert_allclose(got[name], array, rtol=0, atol=tolerance * scale, err_msg=name)


def test_onednn_gradients_are_those_of_the_last_call_not_a_sum_over_calls(onednn):
    problem = odd_problem()
    once, thrice = onednn_layer(onednn, problem), onednn_layer(onednn, problem, calls=3)
    for name, array in once.items():
        np.testing.assert_array_equal(thrice[name], array, err_msg=name)


def test_onednn_uses_the_thread_count_it_is_given(onednn):
    onednn.set_threads(2)
    try:
        assert onednn.versions()["omp_max_threads"] == 2
    finally:
        onednn.set_threads(1)


def test_without_the_onednn_packages_the_peer_is_skipped_with_how_to_install_them(monkeypatch):
    real_distribution = importlib.metadata.distribution

    def distribution(name):
        if name.startswith("onednn"):
            raise importlib.metadata.PackageNotFoundError(name)
        return real_distribution(name)

    monkeypatch.setattr(importlib.metadata, "distribution", distribution)
    assert onednn_rnn.unavailable() == (
        "oneDNN is not installed (pip install '.[bench]': onednn-cpu-gomp, onednn-devel-cpu-gomp)"
    )
    modules, records = load_implementations([peers.SUBJECT, "onednn"], threads=1)
    assert "onednn" not in modules
    assert records["onednn"] == {"available": False, "note": onednn_rnn.unavailable()}


def test_without_a_compiler_the_peer_is_skipped_naming_the_compiler(monkeypatch):
    if onednn_rnn.installation()[0] is None:
        pytest.skip("oneDNN is not installed: the compiler is not looked for")
    monkeypatch.setenv("CXX", "no-such-compiler")
    assert onednn_rnn.unavailable() == (
        "no C++ compiler (no-such-compiler, from $CXX) to build the peer"
    )


class WrongLayer:
    """A layer peer whose dW is off by 1%."""

    NAME = "wrong"

    class LayerRunner:
        def __init__(self, problem):
            self.result_arrays = bptt_layer(problem)

        def __call__(self):
            pass

        def result(self):
            arrays = dict(self.result_arrays)
            hidden = arrays.pop("hidden")
            arrays["W"] = arrays["W"] * 1.01
            return hidden, arrays


def test_a_layer_peer_that_disagrees_is_reported_and_not_timed():
    problem = odd_problem()
    entry, runner = layer.checked_runner(
        WrongLayer, problem, bptt_layer(problem), layer_tolerance(*problem.shape)
    )
    assert runner is None
    assert entry["status"] == "mismatch"
    assert entry["note"].startswith("worst W 1.0e-02 (tolerance ")


def test_the_layer_problem_refuses_token_inputs_naming_the_argument():
    with pytest.raises(
        ValueError, match="problem: expected one with float inputs, got small-tokens"
    ):
        LayerProblem.make("small-tokens")
