"""The core's threads and Python's: one and two threads agree to rounding, calls from several
Python threads equal serial ones, and threads still inside the core at exit do no harm."""

import concurrent.futures
import subprocess
import sys

import numpy as np
import pytest
from random_problems import (
    DTYPES,
    all_arrays,
    assert_bitwise_equal,
    assert_rounding_close,
    make_problem,
    run,
    run_forward,
)

import bptt


def test_set_num_threads_round_trips_through_get_num_threads():
    original = bptt.get_num_threads()
    try:
        for n in (1, 3, 2, np.int64(1)):
            bptt.set_num_threads(n)
            assert bptt.get_num_threads() == n
            assert bptt.build_info()["num_threads"] == n
    finally:
        bptt.set_num_threads(original)
    assert bptt.get_num_threads() == original


# How two threads share the work: each step's product split (2·B·H² >= 16e6, and N·O >= 2^15
# splits the softmax too), by rows where the batch splits evenly into blocks of 4 sequences, by
# columns otherwise (B 12: 8 and 4); steps too small to split, as a pipeline (320 rows) or, for
# a short problem, split by whole products; a few steps of a wide batch fit neither.
TWO_THREAD_SCHEDULES = {
    "steps split by rows": {"T": 8, "B": 64, "D": 16, "H": 384, "O": 64},
    "steps split by columns": {"T": 8, "B": 12, "D": 16, "H": 1200, "O": 64},
    "pipeline": {"T": 40, "B": 8, "D": 16, "H": 32, "O": 24},
    "split products": {"T": 6, "B": 2, "D": 5, "H": 7, "O": 4},
    "few steps of a wide batch": {"T": 4, "B": 300, "D": 3, "H": 8, "O": 5},
}


@pytest.mark.parametrize("schedule", TWO_THREAD_SCHEDULES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_threads_agree_to_rounding(dtype, schedule):
    problem = make_problem(30, **TWO_THREAD_SCHEDULES[schedule], dtype=dtype)
    original = bptt.get_num_threads()
    try:
        bptt.set_num_threads(1)
        one = all_arrays(run(problem), run_forward(problem))
        bptt.set_num_threads(2)
        two = all_arrays(run(problem), run_forward(problem))
    finally:
        bptt.set_num_threads(original)

    assert_rounding_close(two, one, dtype, TWO_THREAD_SCHEDULES[schedule]["T"])


def test_build_info_says_how_threads_share_each_step():
    rule = bptt.build_info()["step_shares"]
    assert rule.startswith("pipelined below 16 MFLOP a step (2·batch·hidden²): one thread runs")
    assert "from 2 MFLOP a step, each step shared by rows (whole blocks of 4 sequences" in rule
    assert rule.endswith("by columns otherwise")


def test_concurrent_calls_from_four_threads_equal_serial_calls():
    problems = [
        make_problem(20 + i, T=40, B=8, D=24, H=48, O=32, dtype=dtype, tokens=tokens, soft=soft)
        for i, (dtype, tokens, soft) in enumerate(
            [
                (np.float32, False, False),
                (np.float64, True, True),
                (np.float32, True, False),
                (np.float64, False, True),
            ]
        )
    ]

    def work(problem):
        return [all_arrays(run(problem), run_forward(problem)) for _ in range(5)]

    serial = [work(problem) for problem in problems]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(work, problems))

    for serial_runs, threaded_runs in zip(serial, threaded, strict=True):
        for arrays in serial_runs + threaded_runs:
            assert_bitwise_equal(arrays, serial_runs[0])


DAEMON_THREADS_AT_EXIT = """
import threading, time
import numpy as np
import bptt
from bptt import _core

params = bptt.init_params(64, 256, 64, seed=0)
inputs = np.random.default_rng(0).standard_normal((400, 32, 64)).astype(np.float32)
targets = np.zeros((400, 32), np.int64)
vectors = [np.ones(4_000_000, np.float32) for _ in range(3)]
calls = [
    lambda: bptt.loss_and_grad(params, inputs, targets),
    lambda: bptt.forward(params, inputs),
    lambda: _core.adagrad_step(*vectors, lr=0.1, eps=1e-10),
]
for call in calls:
    threading.Thread(target=lambda call=call: [call() for _ in iter(int, 1)], daemon=True).start()
time.sleep(0.5)
"""


def test_daemon_threads_inside_the_core_do_not_crash_the_interpreter_at_exit(tmp_path):
    # Each call lasts milliseconds: the threads are inside the core, the GIL released, when the
    # interpreter shuts down.
    script = tmp_path / "daemons.py"
    script.write_text(DAEMON_THREADS_AT_EXIT)
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, str(script)], check=False, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
