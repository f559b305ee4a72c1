"""The timing instruments: timed calls, the interleaved rounds that sample every cell, and the
load that other processes put on the machine meanwhile."""

import contextlib
import math
import os
import statistics
import time
from pathlib import Path

import numpy as np


def timed_calls(call, count: int) -> tuple[list[float], float, float]:
    """count timed calls: their wall times (s), and the block's wall and process CPU time."""
    times = []
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times, time.perf_counter() - wall0, time.process_time() - cpu0


def measure(
    cells: dict, *, budget: float, min_repeats: int, max_repeats: int, rounds: int, settle: float
) -> dict:
    """Median wall time of each cell's call after a warm-up, sampled in interleaved rounds.

    cells: name -> (call, share of the budget, whether to settle first). A cell that switches
    library first sleeps `settle` seconds, so that the previous library's idle threads (OpenBLAS
    spins for a while after a call) stop competing, then re-warms with one untimed call. The
    repeat count adapts: about budget·share seconds of calls, within [min_repeats, max_repeats].
    """
    samples, walls, cpus, repeats = {}, {}, {}, {}
    for name, (call, share, settles) in cells.items():
        if settles:
            time.sleep(settle)
        call()  # warm-up: first touch of buffers, thread start-up, caches
        times, wall, cpu = timed_calls(call, 1)
        samples[name], walls[name], cpus[name] = times, wall, cpu
        floor = min_repeats if times[0] < 1.0 else min(min_repeats, 3)  # seconds-long calls: 3
        repeats[name] = max(floor, min(max_repeats, round(budget * share / times[0])))
    for round_index in range(rounds):
        for name, (call, _, settles) in cells.items():
            left = repeats[name] - len(samples[name])
            count = math.ceil(left / (rounds - round_index)) if left > 0 else 0
            if count == 0:
                continue
            if settles:
                time.sleep(settle)
            if samples[name][0] < 0.2:  # re-warm after the other libraries ran; not for slow calls
                call()
            times, wall, cpu = timed_calls(call, count)
            samples[name] += times
            walls[name] += wall
            cpus[name] += cpu
    return {
        name: {
            "median_ms": 1e3 * statistics.median(times),
            "min_ms": 1e3 * min(times),
            "q1_ms": 1e3 * float(np.percentile(times, 25)),
            "q3_ms": 1e3 * float(np.percentile(times, 75)),
            "repeats": len(times),
            "cpu_per_wall": cpus[name] / walls[name],  # threads actually busy, on average
        }
        for name, times in samples.items()
    }


def measure_options(args) -> dict:
    """measure()'s keyword arguments from the comparison's options."""
    return {
        "budget": args.budget,
        "min_repeats": args.min_repeats,
        "max_repeats": args.max_repeats,
        "rounds": args.rounds,
        "settle": args.settle,
    }


def cpu_seconds_machine() -> tuple[float, float]:
    """CPU seconds every process has run, and seconds stolen by the hypervisor, since boot."""
    with contextlib.suppress(OSError):
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
        hz = os.sysconf("SC_CLK_TCK")
        return (user + nice + system + irq + softirq) / hz, steal / hz
    return math.nan, math.nan


class OtherLoad:
    """How many CPUs other processes (and the hypervisor) kept busy while this one measured: the
    noise of a shared machine, reported beside each row."""

    def __enter__(self):
        self.start = (time.perf_counter(), time.process_time(), *cpu_seconds_machine())
        return self

    def __exit__(self, *exc):
        wall0, own0, busy0, steal0 = self.start
        wall, own = time.perf_counter() - wall0, time.process_time() - own0
        busy, steal = cpu_seconds_machine()
        self.others_cpus = max(0.0, (busy - busy0 - own) / wall)
        self.steal_cpus = (steal - steal0) / wall


def wait_until_quiet(limit_s: float, threshold: float = 0.25) -> float:
    """Wait (at most limit_s) until other processes keep less than `threshold` CPUs busy over one
    second; the seconds waited."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit_s:
        with OtherLoad() as load:
            time.sleep(1.0)
        if load.others_cpus < threshold:
            break
    return round(time.perf_counter() - start, 1)
