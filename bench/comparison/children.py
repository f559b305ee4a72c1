"""Starting the children: each is bench/compare.py again with internal options, in an
environment that fixes its libraries' thread counts, and answers in a JSON file."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .memory_child import MALLOC_ENV

ENTRY = Path(__file__).resolve().parents[1] / "compare.py"
# XLA's documented switch to one thread, set for the 1-thread child. jax 0.10 still gives its pool
# one thread per core with it, so peers/jax_scan.set_threads also creates the client while the
# process may use one CPU (the pool's size is recorded). Only --flags go there: a bare word is
# read as the name of a flag file.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def child_env(threads: int, memory: bool = False) -> dict:
    env = dict(os.environ)
    env["OPENBLAS_NUM_THREADS"] = str(threads)  # NumPy's BLAS even without threadpoolctl
    flags = env.get("XLA_FLAGS", "")
    if threads == 1 and XLA_ONE_THREAD not in flags:
        env["XLA_FLAGS"] = f"{flags} {XLA_ONE_THREAD}".strip()
    if memory:
        env.update(MALLOC_ENV)
    return env


def child_arguments(args) -> list[str]:
    """The options a timing child shares with its parent."""
    return [
        "--problem-list",
        ",".join(args.problem_list),
        "--peers",
        ",".join(args.peer_list),
        "--budget",
        str(args.budget),
        "--rounds",
        str(args.rounds),
        "--settle",
        str(args.settle),
        "--wait-quiet",
        str(args.wait_quiet),
        *(["--quick"] if args.quick else []),
    ]


def run_in_child(extra: list[str], env: dict, timeout: float, entry: Path = ENTRY) -> dict | None:
    """The JSON answer of the program `entry` (bench/compare.py unless told) run as a child with
    the options `extra`, None (and a line on stderr) when it failed."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        command = [sys.executable, str(entry), *extra, "--child-out", str(out)]
        completed = subprocess.run(command, env=env, timeout=timeout, check=False)
        if completed.returncode != 0 or not out.exists():
            print(
                f"child {' '.join(extra)} failed with exit code {completed.returncode}",
                file=sys.stderr,
            )
            return None
        return json.loads(out.read_text())
