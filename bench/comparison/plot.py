"""A run's chart: each peer's median ÷ bptt's per problem (a layer peer's ÷ bptt's layer), a
panel per thread count, with the targets."""

# ruff: noqa: RUF001, RUF003  (×, ÷ are the chart's symbols)

from pathlib import Path

import numpy as np
import peers

from .markdown import plural
from .ratios import TARGET_RATIOS, all_ratios


def plot(report: dict, path: Path) -> str | None:
    """Writes the chart to path; a note instead when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.ticker
    except ImportError:
        return "matplotlib is not installed: no chart"
    runs = report["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(6.5 * len(runs), 4.5), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        problems = list(run["cells"])
        names = [
            p
            for p in (*peers.PEERS, *peers.LAYER_PEERS)
            if run["peers"].get(p, {}).get("available")
        ]
        width = 0.8 / max(len(names), 1)
        for index, name in enumerate(names):
            ratios = [all_ratios(run["cells"][p]).get(name, np.nan) for p in problems]
            xs = np.arange(len(problems)) + (index - (len(names) - 1) / 2) * width
            label = run["peers"][name]["label"]
            ax.bar(
                xs, ratios, width, label=f"{label} (layer)" if name in peers.LAYER_PEERS else label
            )
        if run["threads"] > 1 and any(name in peers.PEERS for name in names):  # the loss's
            targets = [TARGET_RATIOS.get(p, np.nan) for p in problems]
            ax.scatter(
                np.arange(len(problems)),
                targets,
                marker="_",
                s=400,
                color="black",
                zorder=3,
                label="target (best peer)",
            )
        ax.axhline(1.0, color="grey", linewidth=1)
        ax.set_yscale("log", base=2)
        ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.set_xticks(np.arange(len(problems)), problems, rotation=30, ha="right")
        ax.set_ylabel("peer's median ÷ bptt's median (above 1: bptt faster)")
        ax.set_title(plural(run["threads"], "thread"))
        if ax.get_legend_handles_labels()[0]:  # a run of the machine's limits alone has none
            ax.legend(fontsize=8)
    fig.suptitle(f"bptt against its peers, forward+backward, float32 ({report['label']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
