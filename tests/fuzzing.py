"""Runs one of tests/fuzz's atheris fuzzers for a few seconds, as the test suite does."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import bptt

FUZZERS = Path(__file__).parent / "fuzz"


def assert_the_fuzzer_finds_nothing(fuzzer: str, work_dir: Path) -> None:
    """Runs tests/fuzz/<fuzzer> for BPTT_FUZZ_SECONDS (10 by default; longer: see tests/fuzz),
    with its findings and scratch files in work_dir, and fails on any finding."""
    pytest.importorskip("atheris")
    seconds = int(os.environ.get("BPTT_FUZZ_SECONDS", "10"))
    result = subprocess.run(
        [sys.executable, str(FUZZERS / fuzzer), f"-max_total_time={seconds}",
         f"-artifact_prefix={work_dir}/"],
        capture_output=True, text=True, timeout=seconds + 120, check=False,
        env={
            **os.environ,
            "PYTHONPATH": str(Path(bptt.__file__).parent.parent),
            "BPTT_FUZZ_WORK_DIR": str(work_dir),
        },
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done" in result.stderr, result.stderr[-3000:]
    assert not list(work_dir.glob("crash-*"))
