"""The recorded runs: each in a dated folder under the results folder (results.json, results.md,
ratios.png), the last whole one also copied to latest.json and latest.md beside them (the
reference for --compare); reading a record back, and re-writing a record's Markdown and chart."""

import json
import shutil
from pathlib import Path

from .markdown import report_markdown
from .plot import plot
from .ratios import derive

RESULTS = "results"  # a run folder's files: results.json, results.md
LATEST = "latest"  # the results folder's copies of the last run: latest.json, latest.md
CHART = "ratios.png"


def run_folder(out: Path, report: dict) -> Path:
    """Where a run is recorded: `<out>/<UTC time>-<label>`."""
    return out / f"{report['timestamp']}-{report['label']}"


def record_path(path: Path) -> Path:
    """A record's JSON: the path itself, or results.json when it is a run's folder."""
    return path / f"{RESULTS}.json" if path.is_dir() else path


def markdown_path(json_path: Path) -> Path:
    return json_path.with_suffix(".md")


def chart_path(json_path: Path) -> Path:
    """ratios.png beside a run folder's results.json; <name>.png beside any other record."""
    if json_path.name == f"{RESULTS}.json":
        return json_path.with_name(CHART)
    return json_path.with_suffix(".png")


def load(path: Path) -> dict:
    return json.loads(record_path(path).read_text())


def save(
    report: dict, markdown: str, out: Path, *, chart: bool, latest: bool
) -> tuple[Path, str | None]:
    """Records the run in its dated folder and, with `latest`, copies it to latest.*: the folder,
    and a note when the chart could not be drawn."""
    folder = run_folder(out, report)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{RESULTS}.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    markdown_path(json_path).write_text(markdown + "\n")
    note = plot(report, chart_path(json_path)) if chart else None
    if latest:
        for suffix in (".md", ".json"):
            shutil.copyfile(folder / f"{RESULTS}{suffix}", out / f"{LATEST}{suffix}")
    return folder, note


def render(path: Path, *, chart: bool) -> tuple[str, str | None]:
    """Re-writes a recorded run's Markdown (and chart) beside its JSON, without measuring: the
    Markdown, and a note when the chart could not be drawn."""
    json_path = record_path(path)
    report = json.loads(json_path.read_text())
    for run in report["runs"]:
        derive(run)
    markdown = report_markdown(report)
    markdown_path(json_path).write_text(markdown + "\n")
    note = plot(report, chart_path(json_path)) if chart else None
    return markdown, note
