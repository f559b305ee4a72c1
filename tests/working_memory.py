"""The working memory of one loss_and_grad call, as the memory-budget tests measure it.

A child process measures the growth of its resident set at its peak across one call: the peak
reset (clear_refs 5), the core's kept scratch and result blocks released first (so that they
cannot hide the growth), and its code paths run once before on a shorter problem (so that the
pages of code and thread stacks they touch are not counted). The arrays the call returns are
not working memory and are subtracted.
"""

import json
import subprocess
import sys

import pytest

PEAK_SIZES = (20000, 8, 64, 128, 64)  # T, B, D, H, O: the states take 82 MB in float32

# A child program's function: a field of its /proc/self/status, in bytes.
STATUS_BYTES = """
def status_bytes(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
"""

PEAK_CHILD = (
    """
import json, sys
import numpy as np
import bptt
"""
    + STATUS_BYTES
    + """
T, B, D, H, O = json.loads(sys.argv[1])
options = json.loads(sys.argv[2])
bptt.set_num_threads(int(sys.argv[3]))
params = bptt.init_params(D, H, O, seed=0)
rng = np.random.default_rng(0)
inputs, targets = rng.integers(0, D, (T, B)), rng.integers(0, O, (T, B))
bptt.loss_and_grad(params, inputs[:2000], targets[:2000], **options)
bptt.release_scratch()
with open("/proc/self/clear_refs", "w") as clear_refs:
    clear_refs.write("5")
before = status_bytes("VmRSS")
result = bptt.loss_and_grad(params, inputs, targets, **options)
peak = status_bytes("VmHWM")
returned = result.h_last.nbytes + sum(grad.nbytes for grad in result.grads.values())
print(peak - before - returned)
"""
)

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/self/status and clear_refs"
)


def working_memory_peak(thread_count: int = 1, **options) -> int:
    """Peak resident-set growth of a child's call on token ids of PEAK_SIZES with `options`
    (loss_and_grad's keywords), less the arrays it returns."""
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_CHILD,
            json.dumps(PEAK_SIZES),
            json.dumps(options),
            str(thread_count),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return int(child.stdout)
