"""The recorded runs: each in a dated folder under bench/results/memory (results.json and
results.md, kept out of git as the peer comparison's dated runs are); a record read back and its
Markdown written again."""

import json
from pathlib import Path

from comparison.records import RESULTS, markdown_path, record_path, run_folder

from .markdown import report_markdown


def save(report: dict, markdown: str, out: Path) -> Path:
    """Records the run in `<out>/<UTC time>-<label>/`; the folder."""
    folder = run_folder(out, report)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"{RESULTS}.json"
    json_path.write_text(json.dumps(report, indent=1) + "\n")
    markdown_path(json_path).write_text(markdown + "\n")
    return folder


def render(path: Path) -> str:
    """Re-writes a recorded run's Markdown beside its JSON (a results.json or its folder), without
    measuring; the Markdown."""
    json_path = record_path(path)
    markdown = report_markdown(json.loads(json_path.read_text()))
    markdown_path(json_path).write_text(markdown + "\n")
    return markdown
