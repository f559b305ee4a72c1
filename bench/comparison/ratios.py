"""What a run's medians are read for: each peer's ratio to bptt, the best peer, the fractions of
the machine's measures bptt reaches (the GEMM baseline, the sequential chain, the peak sgemm
rate), and the speed targets they are held against."""

# ruff: noqa: RUF001, RUF003  (× is the ratios' symbol)

import gemm_limit

from . import layer
from .problem import problem_flops

# The targets at 2 threads: best peer's median ÷ bptt's median, and at 1 thread ahead of every
# peer; at medium, large and long also a fraction of the peak sgemm rate, by bptt's fastest call.
TARGET_RATIOS = {"charrnn": 4.0, "small": 2.5, "medium": 2.0, "large": 1.25, "long": 2.0}
TARGET_PEAK_FRACTION = {"medium": 0.90, "large": 0.95, "long": 0.90}


def timed_peers(cell: dict) -> dict:
    """The median (ms) of every peer timed on the cell's problem."""
    return {
        name: entry["median_ms"]
        for name, entry in cell["peers"].items()
        if entry.get("status") == "ok" and "median_ms" in entry
    }


def peer_ratios(cell: dict) -> dict:
    """Each timed peer's median ÷ bptt's median."""
    bptt_ms = cell["bptt"]["median_ms"]
    return {name: median_ms / bptt_ms for name, median_ms in timed_peers(cell).items()}


def all_ratios(cell: dict) -> dict:
    """Each peer's ratio to bptt on the cell's problem: the loss's peers', then the layer peers'
    to bptt's layer."""
    return peer_ratios(cell) | (peer_ratios(cell[layer.KEY]) if layer.KEY in cell else {})


def machine_fractions(bptt: dict, flops: int, sequential: dict | None, peak: dict | None):
    """What bptt (its timings) reaches of the machine's measures: the sequential chain's time ÷
    bptt's median, and bptt's GFLOP/s ÷ the peak sgemm rate, by its median and by its fastest
    call; None for a measure not taken."""

    def of_peak(ms: float | None) -> float | None:
        return flops / ms / 1e6 / peak["gflops"] if peak and ms else None

    return {
        "sequential_fraction": sequential["median_ms"] / bptt["median_ms"] if sequential else None,
        "peak_fraction": of_peak(bptt["median_ms"]),
        "peak_fraction_of_fastest": of_peak(bptt.get("min_ms")),
    }


def derive(run: dict) -> None:
    """Best peer, ratio and the fractions of the machine's limits of every cell, and of its layer
    comparison, from the medians (kept in the JSON and recomputed the same way by --render)."""
    peak = run.get(gemm_limit.PEAK_KEY)
    for name, cell in run["cells"].items():
        timed = timed_peers(cell)
        bptt_ms = cell["bptt"]["median_ms"]
        cell["best_peer"] = min(timed, key=timed.get) if timed else None
        cell["ratio"] = timed[cell["best_peer"]] / bptt_ms if timed else None
        limit = cell[gemm_limit.KEY]["median_ms"] if gemm_limit.KEY in cell else None
        cell["limit_fraction"] = limit / bptt_ms if limit is not None else None
        # Noise only ever adds time: on a busy machine the fastest calls say more than the median.
        minima = [cell["peers"][name].get("min_ms") for name in timed]
        if timed and None not in minima and "min_ms" in cell["bptt"]:
            cell["ratio_of_minima"] = min(minima) / cell["bptt"]["min_ms"]
        sequential = cell.get(gemm_limit.SEQUENTIAL_KEY)
        cell.update(machine_fractions(cell["bptt"], problem_flops(name), sequential, peak))
        if layer.KEY in cell:
            derive_layer(cell[layer.KEY], sequential, peak)


def derive_layer(record: dict, sequential: dict | None, peak: dict | None) -> None:
    """Each layer peer's ratio to bptt's layer, medians and fastest calls, and the fractions of
    the machine's limits bptt's layer reaches."""
    record["ratios"] = peer_ratios(record)
    record["minima_ratios"] = {
        name: record["peers"][name]["min_ms"] / record["bptt"]["min_ms"]
        for name in record["ratios"]
    }
    record.update(machine_fractions(record["bptt"], record["flops"], sequential, peak))


def target_text(name: str, threads: int, cell: dict) -> str:
    """Which targets the cell's ratios meet, "—" where none applies."""
    if cell["ratio"] is None:
        return "—"
    goals = []
    if threads == 1:
        goals.append((cell["ratio"] >= 1.0, "≥ 1× every peer"))
    elif name in TARGET_RATIOS:
        goals.append((cell["ratio"] >= TARGET_RATIOS[name], f"≥ {TARGET_RATIOS[name]:g}×"))
    fastest = cell.get("peak_fraction_of_fastest")
    if threads > 1 and name in TARGET_PEAK_FRACTION and fastest is not None:
        goal = TARGET_PEAK_FRACTION[name]
        goals.append((fastest >= goal, f"≥ {100 * goal:.0f}% of peak sgemm"))
    return ", ".join(f"{text} {'met' if met else 'MISSED'}" for met, text in goals) or "—"
