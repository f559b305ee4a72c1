"""The memory of results: scratch kept between calls and released on request, result memory
reused only once freed, and results that are ordinary NumPy arrays of their own."""

import numpy as np
import pytest
from random_problems import MEDIUM, Problem, all_arrays, make_problem, run, run_forward

import bptt


def test_release_scratch_frees_the_kept_buffers_and_results_stay_the_same():
    problem = make_problem(31, T=20, B=4, D=6, H=16, O=9, dtype=np.float32)
    first = all_arrays(run(problem))
    assert bptt.release_scratch() > 0  # the call above left its scratch for the next one
    assert bptt.release_scratch() == 0
    again = all_arrays(run(problem))  # on freshly allocated scratch
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a, b)


def test_results_whose_memory_is_reused_are_never_shared_with_live_results():
    # Large enough (dx is 800 KiB) that the result arrays' memory is kept and reused once freed.
    problem = make_problem(32, T=100, B=32, D=64, H=64, O=16, dtype=np.float32)
    kept = run(problem)
    kept_copy = [array.copy() for array in all_arrays(kept).values()]
    dropped = run(problem)
    del dropped  # its arrays' memory goes back for reuse
    reused = run(problem)
    live_arrays, reused_arrays = all_arrays(kept).values(), all_arrays(reused).values()
    for live, again, before in zip(live_arrays, reused_arrays, kept_copy, strict=True):
        assert not np.shares_memory(live, again)
        np.testing.assert_array_equal(live, before)  # untouched by the call that reused memory
        np.testing.assert_array_equal(again, before)
    del reused
    assert bptt.release_scratch() > 0  # the freed results' kept memory, with the scratch
    assert bptt.release_scratch() == 0


@pytest.mark.parametrize("unbatched", [False, True], ids=["batched", "unbatched"])
def test_changing_forwards_hidden_states_in_place_leaves_its_h_last_unchanged(unbatched):
    # As the oracle's: h_T is a result of its own, not a view of hidden[-1], so that masking
    # the hidden states in place cannot change the state carried to the next call.
    problem = make_problem(33, **MEDIUM, dtype=np.float32)
    if unbatched:
        problem = Problem(problem.params, problem.inputs[:, 0], None, problem.h0[0])
    out = run_forward(problem)
    h_last = out.h_last.copy()

    out.hidden[...] = 0

    assert not np.shares_memory(out.h_last, out.hidden)
    np.testing.assert_array_equal(out.h_last, h_last)


def test_a_result_made_read_only_can_be_made_writable_again():
    # As any NumPy array that owns its memory, and as results were before their memory was kept.
    problem = make_problem(34, **MEDIUM, dtype=np.float32)
    out, result = run_forward(problem), run(problem)
    arrays = {"hidden": out.hidden, "logits": out.logits, "h_last": out.h_last}
    arrays.update({f"grads[{name!r}]": grad for name, grad in result.grads.items()})
    for name, array in arrays.items():
        array.flags.writeable = False
        array.flags.writeable = True
        assert array.flags.writeable, name
