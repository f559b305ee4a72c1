"""A run's report in Markdown: the machine and the method; size 1's budgets (bptt's schedule,
memory and time at each, and the checkpointed peers at about the same memory, with the memory by
segment length they were matched from); size 2 against its budget; the notes."""

# ruff: noqa: RUF001, RUF003  (×, ÷ and · are the tables' symbols)

from comparison.markdown import (
    cpu_lines,
    fmt_bytes,
    fmt_ms,
    fmt_others,
    plural,
    setup_lines,
    table_head,
    table_row,
)

from .cases import (
    DENSE_TARGET_RATIO,
    LONG_TARGET_RATIO,
    MIB,
    TARGET_SHARE,
    Case,
    cell_key,
)
from .matching import matched_configuration, segment_order

PEER_LABELS = {"torch": "PyTorch", "jax": "JAX"}
TIMING_METHOD = (
    "time: the median of repeated calls after a warm-up, every cell of a case (bptt at each "
    "budget and unbudgeted, each peer's configurations and the peer unbudgeted) interleaved in "
    "rounds in one process per thread count, so that the noise of a shared machine falls on all "
    "alike; a ratio is of medians, beside the ratio of the fastest calls, and * marks a median "
    "whose interquartile range is wider than half of it. CPUs busy elsewhere: other processes' "
    "CPU use while a case was timed"
)
PEERS_METHOD = (
    "PyTorch: nn.RNN + nn.Linear + cross-entropy (bench/peers/torch_eager), and checkpointed "
    "(bench/peers/torch_checkpoint): segments of the sequence, each segment's RNN, head and loss "
    "under torch.utils.checkpoint (non-reentrant), the inputs one leaf per segment so that dL/dx "
    "arrives in pieces with no gather. JAX: jit(value_and_grad) of a lax.scan "
    "(bench/peers/jax_scan), and checkpointed (bench/peers/jax_checkpoint): a lax.scan over "
    "segments, each segment jax.checkpoint of a lax.scan over its steps with its input "
    "projection, head and log-softmax. The weights are bptt's; each configuration's loss and "
    "gradients are checked against bptt's before it is timed, and each budgeted call of bptt "
    "must give the unbudgeted call's bits. Matching: each peer's working memory is measured "
    "unbudgeted and at every segment length that divides T; at each budget's row the peer gets "
    "the longest segments whose measured memory is not above bptt's measured memory there; where "
    "none gets that low, the configuration of least memory, marked ‡; a measurement below zero "
    "(memory released during the call hid its need) is passed over"
)


def ratio_text(cells: dict, key: str, reference_key: str) -> str:
    """cells[key]'s median ÷ cells[reference_key]'s, and the fastest calls' ratio."""
    ratio = time_ratio(cells, key, reference_key)
    if ratio is None:
        return "—"
    fastest = cells[key]["min_ms"] / cells[reference_key]["min_ms"]
    return f"{ratio:.2f}× (fastest {fastest:.2f}×)"


def time_ratio(cells: dict, key: str, reference_key: str) -> float | None:
    """The medians' ratio, None when either cell was not timed."""
    if not all("median_ms" in cells.get(k, {}) for k in (key, reference_key)):
        return None
    return cells[key]["median_ms"] / cells[reference_key]["median_ms"]


def ms_text(cells: dict, key: str) -> str:
    entry = cells.get(key, {})
    if "median_ms" not in entry:
        return entry.get("status", "—").upper()
    noisy = entry["q3_ms"] - entry["q1_ms"] > 0.5 * entry["median_ms"]
    return fmt_ms(entry["median_ms"]) + (" *" if noisy else "")


def seconds_text(cells: dict, key: str) -> str:
    entry = cells.get(key, {})
    return f"{entry['median_ms'] / 1e3:.2f}" if "median_ms" in entry else "—"


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def working_bytes(measured: dict | None) -> int | None:
    return None if measured is None else measured["working_bytes"]


def segment_text(segment: int | None, T: int) -> str:
    if segment is None:
        return "none"
    return f"{segment} ({plural(-(-T // segment), 'segment')})"


def header_lines(report: dict) -> list[str]:
    machine = report["machine"]
    return [
        f"# bptt under a memory budget: {report['label']} ({report['timestamp']})",
        "",
        *cpu_lines(machine),
        *setup_lines(machine),
        f"- Command: `{report['command']}`",
        f"- Elapsed: {report.get('elapsed_s', 0):.0f} s",
        "",
        (
            "loss_and_grad's forward+backward (the loss and every gradient: U, W, b, V, c, h0, "
            'and x for float inputs), float32, integer targets, reduction "sum"; '
            "memory_budget in bytes. Method: "
            f"{report['memory_method']}; {TIMING_METHOD}."
        ),
        "",
    ]


def dense_budget_table(record: dict, threads: list[int]) -> list[str]:
    """bptt at each budget: its plan, its measured memory and its time at each thread count."""
    timing = record["timing"]
    header = [
        "budget (share of the states' bytes)",
        "bytes",
        "schedule",
        "states kept",
        "checkpoints",
        "steps computed again (forward passes)",
        "planned MiB",
        "measured MiB",
    ]
    for n in threads:
        header += [f"ms, {plural(n, 'thread')}", f"÷ unbudgeted, {plural(n, 'thread')}"]
    lines = table_head(header)
    unbudgeted = {"label": "unbudgeted", "plan": record["unbudgeted"]["plan"]}
    for row in [unbudgeted, *record["rows"]]:
        budget = row.get("budget_bytes")
        key = cell_key("bptt", budget)
        if row.get("below_minimum"):
            minimum = record["unbudgeted"]["plan"]["minimum_bytes"]
            cells = [row["label"], f"{budget:,}: below the minimum ({minimum:,} bytes)"]
            lines.append(table_row(cells + [""] * (len(header) - 2)))
            continue
        plan = row["plan"]
        measured = record["unbudgeted"]["memory"] if budget is None else row["memory"]
        cells = [
            row["label"],
            "—" if budget is None else f"{budget:,}",
            plan["schedule"],
            f"{plan['stored_states']:,}",
            str(plan["checkpoints"]),
            f"{plan['recomputed_steps']:.3g}",
            fmt_bytes(plan["bytes"]),
            fmt_bytes(working_bytes(measured)),
        ]
        for n in threads:
            by_cell = (timing.get(str(n)) or {}).get("cells", {})
            cells += [ms_text(by_cell, key), ratio_text(by_cell, key, "bptt")]
        lines.append(table_row(cells))
    return lines


def dense_target_lines(record: dict, threads: list[int]) -> list[str]:
    """The time target at TARGET_SHARE, as measured at each thread count."""
    row = next((r for r in record["rows"] if r["share"] == TARGET_SHARE), None)
    if row is None or row["below_minimum"]:
        return []
    key = cell_key("bptt", row["budget_bytes"])
    parts = []
    for n in threads:
        ratio = time_ratio((record["timing"].get(str(n)) or {}).get("cells", {}), key, "bptt")
        if ratio is not None:
            parts.append(
                f"{plural(n, 'thread')} {ratio:.2f}×: {verdict(ratio <= DENSE_TARGET_RATIO)}"
            )
    return [
        f"Target: at a budget of {TARGET_SHARE:.0%} of the states' bytes, time ÷ unbudgeted ≤ "
        f"{DENSE_TARGET_RATIO}×: " + "; ".join(parts) + "."
    ]


def peers_table(record: dict, n: int) -> list[str]:
    """The checkpointed peers at each budget's row, at about bptt's measured memory there."""
    by_cell = (record["timing"].get(str(n)) or {}).get("cells", {})
    available = [p for p, entry in record["peers"].items() if entry["available"]]
    if not available:
        return []
    T = record["case"]["shape"][0]
    header = ["budget", "bptt MiB", "bptt ÷ unbudgeted"]
    for peer in available:
        label = PEER_LABELS.get(peer, peer)
        header += [
            f"{label}: segment length",
            f"{label} MiB",
            f"{label} ÷ its unbudgeted",
            f"{label} ÷ bptt",
        ]
    lines = [
        f"### PyTorch and JAX checkpointed at about bptt's memory, {plural(n, 'thread')}",
        "",
        *table_head(header),
    ]
    unbudgeted_cells = ["unbudgeted", fmt_bytes(working_bytes(record["unbudgeted"]["memory"])), "1"]
    for peer in available:
        curve = {entry["segment"]: entry for entry in record["peers"][peer]["curve"]}
        unbudgeted_cells += [
            "none",
            fmt_bytes(curve.get(None, {}).get("working_bytes")),
            "1",
            ratio_text(by_cell, peer, "bptt"),
        ]
    lines.append(table_row(unbudgeted_cells))
    for row in record["rows"]:
        if row["below_minimum"] or row.get("memory") is None:
            continue
        key = cell_key("bptt", row["budget_bytes"])
        cells = [
            row["label"],
            fmt_bytes(working_bytes(row["memory"])),
            ratio_text(by_cell, key, "bptt"),
        ]
        for peer in available:
            match = current_match(row, peer, record["peers"][peer]["curve"], by_cell)
            if match is None:
                cells += ["—"] * 4
                continue
            peer_key = cell_key(peer, segment=match["segment"])
            cells += [
                segment_text(match["segment"], T) + ("" if match["within"] else " ‡"),
                fmt_bytes(match["working_bytes"]),
                ratio_text(by_cell, peer_key, peer),
                ratio_text(by_cell, peer_key, key),
            ]
        lines.append(table_row(cells))
    return lines


def current_match(row: dict, peer: str, curve: list[dict], by_cell: dict) -> dict | None:
    """The peer's configuration at the row as matching.py matches today, where that
    configuration was timed (a run's record keeps the match made when it ran)."""
    stored = row["peers"].get(peer)
    if stored is None:
        return None
    match = matched_configuration(curve, row["memory"]["working_bytes"])
    return match if cell_key(peer, segment=match["segment"]) in by_cell else stored


def curve_table(record: dict) -> list[str]:
    """Each peer's measured working memory by segment length: what the rows were matched from."""
    available = [p for p, entry in record["peers"].items() if entry["available"]]
    if not available:
        return []
    T = record["case"]["shape"][0]
    curves = {
        p: {e["segment"]: e["working_bytes"] for e in record["peers"][p]["curve"]}
        for p in available
    }
    segments = sorted(
        {s for curve in curves.values() for s in curve},
        key=lambda s: -segment_order({"segment": s}),
    )
    lines = [
        f"### The peers' working memory by segment length, MiB ({plural(record['memory_threads'], 'thread')})",
        "",
        *table_head(["segment length (segments)", *(PEER_LABELS.get(p, p) for p in available)]),
    ]
    for segment in segments:
        label = "none (unbudgeted)" if segment is None else segment_text(segment, T)
        lines.append(table_row([label, *(curve_cell(curves[p].get(segment)) for p in available)]))
    if any(n is not None and n < 0 for curve in curves.values() for n in curve.values()):
        lines += [
            "",
            "§ below zero: the call's memory hidden by memory released during it; not matched.",
        ]
    return lines


def curve_cell(working: int | None) -> str:
    return fmt_bytes(working) + (" §" if working is not None and working < 0 else "")


def busy_line(timing: dict) -> str:
    """Other processes' CPU use while each thread count's cells were timed."""
    parts = [
        f"{plural(int(n), 'thread')} {fmt_others(record)}"
        for n, record in timing.items()
        if record is not None
    ]
    return f"CPUs busy elsewhere while timed: {'; '.join(parts)}."


def dense_section(record: dict, threads: list[int]) -> list[str]:
    case = Case(**record["case"])
    states = record["states_bytes"]
    return [
        f"## Size 1: {case.title()}",
        "",
        (
            f"The hidden states' bytes, (T + 1)·B·H·4: {states:,} ({states / MIB:.2f} MiB); the "
            "budgets are shares of them, and the minimum is memory_plan's minimum_bytes. Working "
            f"memory measured at {plural(record['memory_threads'], 'thread')}; planned: "
            "memory_plan's bytes there. Steps computed again: memory_plan's recomputed_steps, in "
            "forward passes of the sequence."
        ),
        "",
        *dense_budget_table(record, threads),
        "",
        *dense_target_lines(record, threads),
        busy_line(record["timing"]),
        "",
        *(line for n in threads for line in [*peers_table(record, n), ""]),
        *curve_table(record),
        "",
    ]


def long_section(record: dict) -> list[str]:
    case = Case(**record["case"])
    budget, states = record["budget_bytes"], record["states_bytes"]
    header = [
        "threads",
        "unbudgeted: planned MiB",
        "measured MiB",
        "s",
        "budgeted: schedule",
        "states kept",
        "checkpoints",
        "steps computed again",
        "planned MiB",
        "measured MiB",
        "s",
        "time ÷ unbudgeted",
        f"targets: memory ≤ {budget / MIB:g} MiB, time ≤ {LONG_TARGET_RATIO}×",
        "CPUs busy elsewhere",
    ]
    lines = [
        f"## Size 2: {case.title()}, budget {budget / MIB:g} MiB ({budget:,} bytes)",
        "",
        (
            f"The hidden states' bytes: {states:,} ({states / MIB:,.0f} MiB), "
            f"{states / budget:.1f}× the budget."
        ),
        "",
        *table_head(header),
    ]
    key = cell_key("bptt", budget)
    for n, entry in record["threads"].items():
        plans, memory, timing = entry["plans"], entry["memory"], entry["timing"] or {}
        by_cell = timing.get("cells", {})
        measured = working_bytes(memory["budgeted"])
        ratio = time_ratio(by_cell, key, "bptt")
        targets = "—"
        if measured is not None and ratio is not None:
            targets = (
                f"memory {verdict(measured <= budget)}, time {verdict(ratio <= LONG_TARGET_RATIO)}"
            )
        budgeted = plans["budgeted"]
        lines.append(
            table_row(
                [
                    n,
                    fmt_bytes(plans["unbudgeted"]["bytes"]),
                    fmt_bytes(working_bytes(memory["unbudgeted"])),
                    seconds_text(by_cell, "bptt"),
                    budgeted["schedule"],
                    f"{budgeted['stored_states']:,}",
                    str(budgeted["checkpoints"]),
                    f"{budgeted['recomputed_steps']:.3g}",
                    fmt_bytes(budgeted["bytes"]),
                    fmt_bytes(measured),
                    seconds_text(by_cell, key),
                    ratio_text(by_cell, key, "bptt"),
                    targets,
                    fmt_others(timing) if timing else "—",
                ]
            )
        )
    return [*lines, ""]


def notes(report: dict) -> list[str]:
    """Peers not installed, cells that failed their check, children that failed."""
    found = []
    dense = report.get("dense", {})
    for peer, entry in dense.get("peers", {}).items():
        if not entry["available"]:
            found.append(f"{peer} skipped: {entry['note']}")
    for n, timing in dense.get("timing", {}).items():
        for row in dense["rows"] if timing else []:
            entry = timing["cells"].get(cell_key("bptt", row["budget_bytes"]), {})
            if "plan" in entry and entry["plan"] != row["plan"]:
                found.append(
                    f"the {row['label']} budget's plan at {plural(int(n), 'thread')} differs from "
                    f"the one shown: {entry['plan']}"
                )
    timing_records = [*dense.get("timing", {}).items()]
    timing_records += [
        (n, e["timing"]) for n, e in report.get("long", {}).get("threads", {}).items()
    ]
    for n, timing in timing_records:
        if timing is None:
            found.append(f"a timing child at {plural(int(n), 'thread')} failed")
            continue
        for key, entry in timing["cells"].items():
            if entry.get("status") != "ok":
                found.append(
                    f"{key} at {plural(int(n), 'thread')}: {entry['status']}: {entry.get('note', '')}"
                )
    return found


def report_markdown(report: dict) -> str:
    lines = header_lines(report)
    if "dense" in report:
        lines += [f"Peers. {PEERS_METHOD}.", "", *dense_section(report["dense"], report["threads"])]
    if "long" in report:
        lines += long_section(report["long"])
    found = notes(report)
    if found:
        lines += ["### Notes", "", *(f"- {note}" for note in found), ""]
    return "\n".join(lines)
