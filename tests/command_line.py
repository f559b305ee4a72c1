"""Running the `bptt` command in a child process, and the shape every bad-input error takes."""

import subprocess
import sys


def bptt_command(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "bptt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *phrases: str):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"bptt {command}: error: ")
    for phrase in phrases:
        assert phrase in lines[0]
    assert result.stdout == ""
