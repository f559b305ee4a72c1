"""A run against a previous one: the change of every peer's ratio to bptt (the layer peers' to
bptt's layer), per peer, so that a peer missing from one run does not pass for a change of
bptt's speed."""

# ruff: noqa: RUF001, RUF003  (× and ÷ are the table's symbols)

import peers

from .markdown import fmt_ms, table_head, table_row
from .ratios import all_ratios


def ratio_changes(report: dict, previous: dict, source: str) -> str:
    """A Markdown table of each peer's median ÷ bptt's median, before → now, for every
    (threads, problem) both runs measured; `source` names the previous run in the title."""
    old_runs = {run["threads"]: run for run in previous["runs"]}
    names = [
        p
        for p in (*peers.PEERS, *peers.LAYER_PEERS)
        if any(p in run["peers"] for run in report["runs"])
    ]
    labels = [
        peers.load(name).NAME + (" (layer)" if name in peers.LAYER_PEERS else "") for name in names
    ]
    lines = [
        (
            f"Against {source} ({previous.get('timestamp')}): peer's median ÷ bptt's median, "
            "before → now (change)"
        ),
        "",
        *table_head(["threads", "problem", "bptt ms before → now", *labels]),
    ]
    for run in report["runs"]:
        old = old_runs.get(run["threads"], {})
        for problem, cell in run["cells"].items():
            old_cell = old.get("cells", {}).get(problem)
            if old_cell is None:
                continue
            before, now = all_ratios(old_cell), all_ratios(cell)
            row = [
                str(run["threads"]),
                problem,
                f"{fmt_ms(old_cell['bptt']['median_ms'])} → {fmt_ms(cell['bptt']['median_ms'])}",
            ]
            for name in names:
                if name in before and name in now:
                    row.append(
                        f"{before[name]:.2f} → {now[name]:.2f} ({now[name] / before[name]:.2f}×)"
                    )
                else:
                    row.append("—")
            lines.append(table_row(row))
    cpus = [cpu_name(record.get("machine", {})) for record in (previous, report)]
    if cpus[0] != cpus[1]:
        lines += ["", f"Note: the runs' CPUs differ ({cpus[0]} before, {cpus[1]} now)."]
    return "\n".join(lines)


def cpu_name(machine: dict) -> str:
    """The CPU as a record names it: model name, family and model where it says them."""
    cpu = machine.get("cpu", {})
    name = machine.get("cpu_model", "an unnamed CPU")
    return f"{name} family {cpu['family']} model {cpu['model']}" if "model" in cpu else name
