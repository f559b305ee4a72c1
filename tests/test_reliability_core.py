"""The core under hostile but realistic use: a forked child computes the same bits, ids changed
by another thread while a call runs never make it read out of bounds, an argument's copy too
large for the memory available is a MemoryError before it is made, and the errors name the
argument that is wrong."""

import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

import bptt
from bptt import _core


def run_child(code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# The end of a child program that has computed `before` on `params` and `ids`: it forks, and the
# forked process computes again, on one thread, the same bits; killed if it hangs, rather than
# left spinning. Prints the forked process's exit status ("0": the same bits) or "hung".
FORK_AND_COMPUTE_AGAIN = """
import os, time
pid = os.fork()
if pid == 0:
    after = bptt.loss_and_grad(params, ids, ids)
    same = after.loss == before.loss and all(
        np.array_equal(after.grads[k], before.grads[k]) for k in before.grads)
    os._exit(0 if same and bptt.get_num_threads() == 1 else 3)
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        print(os.waitstatus_to_exitcode(status))
        break
    time.sleep(0.05)
else:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    print("hung")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_after_a_two_thread_call_computes_the_same_bits():
    child = run_child(
        textwrap.dedent(
            """
        import numpy as np, bptt
        bptt.set_num_threads(2)
        params = bptt.init_params(64, 256, 64, seed=0)
        ids = np.random.default_rng(0).integers(0, 64, (200, 16))
        before = bptt.loss_and_grad(params, ids, ids)
        """
        )
        + FORK_AND_COMPUTE_AGAIN,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "0"


@pytest.mark.skipif(
    not hasattr(os, "fork") or "asan" in os.environ.get("LD_PRELOAD", ""),
    reason="needs os.fork, and PyTorch, which is not built for AddressSanitizer",
)
def test_a_child_forked_after_another_librarys_openmp_team_computes_on_one_thread():
    # PyTorch shares the core's libgomp: its team leaves the pool a child cannot use, though
    # the core itself never ran one. The child is killed if it hangs, rather than left spinning.
    pytest.importorskip("torch")
    child = run_child(
        textwrap.dedent(
            """
        import numpy as np, torch, bptt
        torch.set_num_threads(2)
        a = torch.randn(512, 512)
        for _ in range(10):
            torch.tanh(a @ a)
        params = bptt.init_params(65, 128, 65, seed=0)
        ids = np.random.default_rng(0).integers(0, 65, (50, 16))
        bptt.set_num_threads(1)
        before = bptt.loss_and_grad(params, ids, ids)
        bptt.set_num_threads(2)
        """
        )
        + FORK_AND_COMPUTE_AGAIN,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "0"


@pytest.mark.skipif(
    sys.platform != "linux" or "asan" in os.environ.get("LD_PRELOAD", ""),
    reason="a library preloaded on Linux, where AddressSanitizer's runtime must come first",
)
def test_threads_that_cannot_start_leave_the_call_on_one_thread_with_the_same_bits(tmp_path):
    # The OpenMP runtime ends the process when a thread of a team cannot start (at a limit on
    # threads or on address space); the core tries first, and computes on one thread.
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler for the preloaded library")
    library = tmp_path / "thread_start_fails.so"
    source = Path(__file__).with_name("thread_start_fails.c")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", library, source, "-ldl"], check=True)
    child = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(
            """
            import os, numpy as np, bptt
            params = bptt.init_params(65, 128, 65, seed=0)
            ids = np.random.default_rng(0).integers(0, 65, (200, 16))
            bptt.set_num_threads(1)
            before = bptt.loss_and_grad(params, ids, ids)
            bptt.set_num_threads(2)
            os.environ["BPTT_TEST_THREADS_FAIL"] = "1"
            after = bptt.loss_and_grad(params, ids, ids)
            print(after.loss == before.loss and all(
                np.array_equal(after.grads[k], before.grads[k]) for k in before.grads))
            """
        )],
        env={**os.environ, "LD_PRELOAD": str(library), "OPENBLAS_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == "True"


@pytest.mark.skipif(
    sys.platform != "linux" or "asan" in os.environ.get("LD_PRELOAD", ""),
    reason="Linux's RLIMIT_AS, which AddressSanitizer's reserved shadow memory cannot run under",
)
def test_the_memory_available_is_within_the_processs_address_space_limit():
    # A container or a shell may limit a process below the machine's free memory: an allocation
    # beyond the limit is a MemoryError up front, not a failure while the core runs.
    child = run_child(
        """
        import resource, numpy as np, bptt
        from bptt import _core
        limit = 3 * 2**30
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))
        print(_core.available_memory_bytes() <= limit)
        params = bptt.init_params(8, 64, 8, seed=0)
        try:  # 5 GB of states
            bptt.layer_forward(params, np.zeros((100_000, 200), np.int64))
        except MemoryError as error:
            print(error)
        """,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    fits, message = child.stdout.splitlines()
    assert fits == "True"
    assert message.startswith("layer_forward needs 5.12 GB, more than the ")


@pytest.mark.skipif(
    sys.platform != "linux" or "asan" in os.environ.get("LD_PRELOAD", ""),
    reason="Linux's RLIMIT_AS, which AddressSanitizer's reserved shadow memory cannot run under",
)
def test_no_budget_in_less_memory_than_every_state_needs_plans_and_runs_what_fits():
    # Every state kept takes 205 MB; the limit leaves 120 MiB. The plan says what the call
    # does, and the call gives the bits of the one made before the limit.
    child = run_child(
        """
        import resource, numpy as np, bptt
        from bptt import _core
        bptt.set_num_threads(1)
        T, B, D, H, O = 50_000, 8, 32, 128, 32
        params = bptt.init_params(D, H, O, seed=0)
        ids = np.random.default_rng(0).integers(0, D, (T, B))
        unlimited = bptt.loss_and_grad(params, ids, ids)
        every_state = bptt.memory_plan(T, B, D, H, O, tokens=True)
        with open("/proc/self/statm") as statm:
            used = int(statm.read().split()[0]) * resource.getpagesize()
        resource.setrlimit(resource.RLIMIT_AS, (used + 120 * 2**20, resource.RLIM_INFINITY))
        plan = bptt.memory_plan(T, B, D, H, O, tokens=True)
        limited = bptt.loss_and_grad(params, ids, ids)
        print(every_state.schedule, every_state.bytes > 200e6)
        print(plan.schedule != "every state kept", plan.bytes <= _core.available_memory_bytes())
        print(limited.loss == unlimited.loss and all(
            np.array_equal(limited.grads[name], unlimited.grads[name]) for name in unlimited.grads))
        """,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.splitlines() == ["every state kept True", "True True", "True"]


def test_ids_rewritten_by_another_thread_during_calls_never_crash_the_core():
    child = run_child(
        """
        import threading, numpy as np, bptt
        params = bptt.init_params(3, 6, 4, seed=0)
        ids = np.zeros((2000, 8), np.int64)
        lengths = np.full(8, 2000)
        stop = False
        def rewrite():
            rng = np.random.default_rng(1)
            while not stop:
                ids[rng.integers(2000), rng.integers(8)] = 10**12
                lengths[rng.integers(8)] = 10**12
                ids[:] = 0
                lengths[:] = 2000
        writer = threading.Thread(target=rewrite)
        writer.start()
        refused = 0
        for _ in range(300):
            try:
                bptt.forward(params, ids)
                bptt.loss_and_grad(params, ids, ids)
                bptt.layer_forward(params, ids, lengths=lengths)
            except ValueError as error:
                assert "out of range" in str(error), error
                refused += 1
        stop = True
        writer.join()
        print("done", refused)
        """,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("done")


@contextmanager
def flipped_by_another_thread(array: np.ndarray, first, second) -> Iterator[None]:
    """Within it, another thread fills `array` with `first`, then `second`, over and over."""
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            array[:] = first
            array[:] = second

    writer = threading.Thread(target=flip)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


def calls_for_seconds(seconds: float, call) -> Iterator[object]:
    """call()'s results, or the ValueErrors it raised, for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            yield call()
        except ValueError as error:
            yield error


def test_an_id_refused_while_another_thread_rewrites_it_is_quoted_as_it_was_checked():
    # Targets flipped between -5 (refused) and 0: a message read from the caller's memory again
    # quoted "id 0 ... is out of range" within a second here.
    targets = np.zeros((100, 8), np.int64)
    params = bptt.init_params(4, 16, 8, seed=1)
    hidden = np.zeros((100, 8, 16), np.float32)
    with flipped_by_another_thread(targets, -5, 0):
        outcomes = list(
            calls_for_seconds(3, lambda: bptt.head_loss_and_grad(params, hidden, targets))
        )
    quoted = {str(error).split(" at ")[0] for error in outcomes if isinstance(error, ValueError)}
    assert quoted <= {"targets: id -5"}


def test_an_unsigned_id_too_large_while_another_thread_rewrites_it_is_never_taken_as_minus_1():
    # Checked in the caller's array, then converted from it, 2**64 - 1 could become the id -1
    # ("no target") unseen: the call computed a loss without those targets.
    targets = np.zeros((100, 8), np.uint64)
    params = bptt.init_params(4, 16, 8, seed=1)
    hidden = np.full((100, 8, 16), 0.5, np.float32)
    every_target_zero = bptt.head_loss_and_grad(params, hidden, targets).loss
    with flipped_by_another_thread(targets, 2**64 - 1, 0):
        outcomes = list(
            calls_for_seconds(3, lambda: bptt.head_loss_and_grad(params, hidden, targets))
        )
    losses = {outcome.loss for outcome in outcomes if not isinstance(outcome, ValueError)}
    refused = {str(error).split(" at ")[0] for error in outcomes if isinstance(error, ValueError)}
    # a call reads the targets once: all zeros, or some refused, never some taken as -1
    assert losses <= {every_target_zero}
    assert refused <= {"targets: id 18446744073709551615"}


def test_a_broadcast_parameter_whose_copy_would_not_fit_is_a_memory_error_before_the_copy():
    # V's contiguous copy would take twice the memory available: refused up front. (Just over
    # it is not enough: memory freed between this reading and the core's own, by a child of an
    # earlier test exiting, made the copy fit, and the copy took all the RAM under ASan.)
    rows = 2 * _core.available_memory_bytes() // (4 * 6) + 1
    params = bptt.init_params(3, 6, 4, seed=0)
    params["V"] = np.broadcast_to(np.float32(0), (rows, 6))
    params["c"] = np.broadcast_to(np.float32(0), (rows,))
    ids = np.zeros((5, 2), np.int64)
    with pytest.raises(MemoryError, match=r"params\['V'\]'s copy needs"):
        bptt.loss_and_grad(params, ids, ids)


def test_a_wrong_hidden_size_of_U_is_reported_as_U_not_W():
    # W and b agree on H = 6: U's 5 rows are the odd ones out.
    params = bptt.init_params(3, 6, 4, seed=0)
    params["U"] = np.zeros((5, 3), np.float32)
    ids = np.zeros((5, 2), np.int64)
    with pytest.raises(ValueError, match=r"params\['U'\]: expected shape \(H, D\) with H = 6"):
        bptt.loss_and_grad(params, ids, ids)


def test_lengths_too_large_for_int64_are_called_lengths_not_ids():
    params = bptt.init_params(3, 6, 4, seed=0)
    lengths = np.array([2**64 - 1, 1], np.uint64)
    with pytest.raises(ValueError, match=r"lengths: length 18446744073709551615"):
        bptt.layer_forward(params, np.zeros((5, 2), np.int64), lengths=lengths)


@pytest.mark.parametrize(("name", "value"), [("reverse", 1), ("check_finite", None)])
def test_the_private_cores_flags_take_bools_only(name, value):
    params = bptt.init_params(3, 6, 4, seed=0)
    with pytest.raises(TypeError):
        _core.layer_forward(
            params["U"], params["W"], params["b"], np.zeros((5, 2), np.int64), **{name: value}
        )
