"""The memory-budget benchmark (bench/memory_budget.py, the package bench/budgets): the budgets'
rows, the peers' segment lengths and how a peer is matched to bptt's memory; the checkpointed
peers computing bptt's loss and gradients; a budgeted bptt cell giving the unbudgeted call's
bits; the memory child's working memory; the report of a recorded run; the quick mode end to
end."""

# ruff: noqa: RUF001, RUF002, RUF003  (× and ÷ are the tables' symbols)

import sys
from pathlib import Path

import numpy as np
import pytest

import bptt

# bench/ is a folder of scripts, not a package: its modules import each other by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import peers
from budgets import cli, run
from budgets.cases import MIB, Case, budget_rows, cell_key, segment_lengths
from budgets.markdown import report_markdown
from budgets.matching import matched_configuration
from budgets.runners import cell, make_runner
from budgets.timing_child import checked_cells, same_bits

TINY_DENSE = Case("dense", (12, 3, 5, 6, 4), tokens=False)
TINY_TOKENS = Case("long", (12, 3, 5, 6, 4), tokens=True)


def test_budget_rows_are_shares_of_the_states_bytes_then_the_minimum():
    rows = budget_rows(states_bytes=10_000, minimum_bytes=700)
    assert [row["label"] for row in rows] == ["100%", "25%", "10%", "5%", "1%", "minimum"]
    assert [row["budget_bytes"] for row in rows] == [10_000, 2_500, 1_000, 500, 100, 700]
    assert [row["below_minimum"] for row in rows] == [False, False, False, True, True, False]
    assert rows[-1]["share"] == 0.07


def test_the_states_bytes_are_those_of_h0_to_hT_in_float32():
    assert Case("dense", (1000, 32, 128, 256, 128), tokens=False).states_bytes() == (
        1001 * 32 * 256 * 4
    )


def test_peer_segment_lengths_divide_T_and_leave_at_least_two_segments():
    assert segment_lengths(1000, quick=False) == [
        *(2, 4, 5, 8, 10, 20, 25, 40, 50, 100, 125, 200, 250, 500)
    ]
    assert segment_lengths(400, quick=True) == [100]


def test_cell_keys_name_the_budget_or_the_segment_length():
    assert cell_key("bptt") == "bptt"
    assert cell_key("bptt", memory_budget=1024) == "bptt@1024"
    assert cell_key("torch", segment=25) == "torch/25"


def curve(*pairs) -> list[dict]:
    return [{"segment": segment, "working_bytes": n} for segment, n in pairs]


def test_a_peer_gets_the_longest_segments_within_bptts_memory():
    measured = curve((None, 90), (2, 30), (10, 12), (50, 20), (250, 60))
    assert matched_configuration(measured, 25) == {
        "segment": 50,
        "working_bytes": 20,
        "within": True,
    }
    assert matched_configuration(measured, 60)["segment"] == 250  # at bptt's memory counts
    assert matched_configuration(measured, 100)["segment"] is None  # no checkpointing: longest


def test_a_peer_that_cannot_get_as_low_as_bptt_gets_its_least_memory_marked():
    measured = curve((None, 90), (2, 30), (10, 12), (50, 20), (100, None))  # 100: child failed
    assert matched_configuration(measured, 5) == {
        "segment": 10,
        "working_bytes": 12,
        "within": False,
    }
    with pytest.raises(ValueError, match="curve"):
        matched_configuration(curve((10, None)), 5)


def test_a_measurement_below_zero_is_no_match():
    # memory released during a peer's call hid its need: it measured nothing
    measured = curve((None, 90), (10, -15), (50, 20))
    assert matched_configuration(measured, 5) == {
        "segment": 50,
        "working_bytes": 20,
        "within": False,
    }
    assert matched_configuration(measured, 25)["segment"] == 50


def problem_of(case: Case):
    return case.problem()


@pytest.mark.parametrize("case", [TINY_DENSE, TINY_TOKENS], ids=["dense", "tokens"])
@pytest.mark.parametrize("peer", list(peers.CHECKPOINTED))
@pytest.mark.parametrize("segment", [1, 4, 5, 12])
def test_checkpointed_peer_computes_the_loss_and_gradients_of_bptt(peer, case, segment):
    module = peers.load_checkpointed(peer)
    if module.unavailable():
        pytest.skip(module.unavailable())
    if peer == "jax" and case.shape[0] % segment:
        with pytest.raises(ValueError, match="segment: expected a divisor of T = 12, got 5"):
            module.Runner(problem_of(case), segment)
        return
    problem = problem_of(case)
    subject = make_runner(cell("bptt"), problem)
    subject()
    want_loss, want_grads = subject.result()
    runner = make_runner(cell(peer, segment=segment), problem)
    runner()
    loss, grads = runner.result()
    # float32 on 12 steps of 3 rows: a few ulps of the largest entry, summed in another order.
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert set(grads) == set(want_grads)
    for name, want in want_grads.items():
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(grads[name], want, rtol=0, atol=1e-5 * scale, err_msg=name)
    # The arrays returned: bptt's gradients (bptt also returns h_last, B·H floats) and the peer's
    # own extras: PyTorch's second bias (H floats), JAX's loss.
    _, B, _, H, _ = case.shape
    extra = {"torch": 4 * H, "jax": 4}[peer]
    assert runner.output_bytes() == subject.output_bytes() - 4 * B * H + extra


def test_a_budgeted_bptt_cell_is_checked_for_the_unbudgeted_calls_bits():
    problem = problem_of(TINY_DENSE)
    minimum = bptt.memory_plan(*TINY_DENSE.shape).minimum_bytes
    job = {"cells": [cell("bptt"), cell("bptt", memory_budget=minimum)]}
    runners, records = checked_cells(job, problem)
    key = cell_key("bptt", minimum)
    assert set(runners) == {"bptt", key}
    assert records[key]["status"] == "ok"
    assert records[key]["plan"]["bytes"] <= minimum
    unbudgeted = runners["bptt"].last
    changed = unbudgeted._replace(loss=np.nextafter(unbudgeted.loss, np.inf))
    assert same_bits(unbudgeted, runners[key].last)
    assert not same_bits(changed, runners[key].last)


def test_memory_child_reports_the_peak_growth_less_the_arrays_returned():
    T, B, D, H, O = TINY_DENSE.shape
    measured = run.working_memory(TINY_DENSE, cell("bptt"), threads=1)
    grads = H * D + H * H + H + O * H + O + B * H + T * B * D  # U, W, b, V, c, h0, x
    assert measured["output_bytes"] == 4 * (grads + B * H)  # and h_last
    assert measured["method"] == "VmHWM reset"
    assert measured["working_bytes"] == measured["peak_extra_bytes"] - measured["output_bytes"]


def timing(median_ms: float) -> dict:
    """A cell's timing as a timing child records it."""
    return {
        "status": "ok",
        "median_ms": median_ms,
        "min_ms": median_ms,
        "q1_ms": median_ms,
        "q3_ms": median_ms,
        "repeats": 5,
        "cpu_per_wall": 1.0,
    }


def plan(schedule: str, nbytes: int, minimum: int = 50) -> dict:
    return {
        "bytes": nbytes,
        "schedule": schedule,
        "stored_states": 7,
        "checkpoints": 3,
        "recomputed_steps": 0.9,
        "minimum_bytes": minimum,
    }


def recorded_report() -> dict:
    """A run at 2 threads: size 1 with a 100% row (bptt 1.2× its unbudgeted time, PyTorch
    matched within bptt's memory) and a 10% row (1.3×, PyTorch above bptt's memory at its
    least), JAX not installed; size 2 within its budget in memory, 1.4× in time."""
    states = 11 * 3 * 6 * 4
    rows = budget_rows(states, 50, shares=(1.0, 0.10, 0.01))
    rows[0] |= {"plan": plan("segments", 700), "memory": {"working_bytes": 2 * MIB}}
    rows[1] |= {"plan": plan("segments", 200), "memory": {"working_bytes": 1 * MIB}}
    rows[3] |= {"plan": plan("binomial", 50), "memory": {"working_bytes": MIB // 2}}
    torch_curve = curve((None, 8 * MIB), (2, 3 * MIB), (5, int(1.5 * MIB)))
    for row in (rows[0], rows[1], rows[3]):
        row["peers"] = {"torch": matched_configuration(torch_curve, row["memory"]["working_bytes"])}
    machine = {
        "cpu_model": "a CPU",
        "cpu": {"model_name": "a CPU", "family": "23", "model": "1", "flags": ["avx2", "fma"]},
        "logical_cpus": 2,
        "platform": "Linux",
        "python": "3.12.0",
        "versions": {"bptt": "0.1.0"},
        "bptt_build_info": {"instruction_set": "avx2"},
        "bptt_source": {"commit": "0123abc", "core_sources_changed": False},
        "numpy_blas": [],
        "openblas_tuning_set": [],
        "load_average_start": [0.5, 0.5, 0.5],
        "load_average_end": [0.5, 0.5, 0.5],
        "niceness": 0,
    }
    dense_cells = {
        "bptt": timing(100.0),
        cell_key("bptt", rows[0]["budget_bytes"]): timing(120.0),
        cell_key("bptt", rows[1]["budget_bytes"]): timing(130.0),
        cell_key("bptt", 50): timing(300.0),
        "torch": timing(400.0),
        "torch/5": timing(600.0),
    }
    long_budget = 64 * MIB
    return {
        "schema": 1,
        "label": "full",
        "timestamp": "20260101-120000",
        "command": "python bench/memory_budget.py",
        "machine": machine,
        "memory_method": "peak growth",
        "threads": [2],
        "elapsed_s": 60,
        "dense": {
            "case": {"name": "dense", "shape": [10, 3, 5, 6, 4], "tokens": False},
            "states_bytes": states,
            "memory_threads": 2,
            "unbudgeted": {"plan": plan("every state kept", 900), "memory": {"working_bytes": MIB}},
            "rows": rows,
            "peers": {
                "torch": {"available": True, "curve": torch_curve},
                "jax": {"available": False, "note": "jax is not installed"},
            },
            "timing": {
                "2": {"threads": 2, "others_cpus": 0.25, "steal_cpus": 0.0, "cells": dense_cells}
            },
        },
        "long": {
            "case": {"name": "long", "shape": [100_000, 8, 64, 256, 64], "tokens": True},
            "states_bytes": 819_208_192,
            "budget_bytes": long_budget,
            "threads": {
                "2": {
                    "plans": {
                        "unbudgeted": plan("every state kept", 1_800 * MIB),
                        "budgeted": plan("segments", 63 * MIB),
                    },
                    "memory": {
                        "unbudgeted": {"working_bytes": 1_790 * MIB},
                        "budgeted": {"working_bytes": 63 * MIB},
                    },
                    "timing": {
                        "threads": 2,
                        "others_cpus": 0.5,
                        "steal_cpus": 0.0,
                        "cells": {
                            "bptt": timing(10_000.0),
                            f"bptt@{long_budget}": timing(14_000.0),
                        },
                    },
                }
            },
        },
    }


def table(markdown: str, first_header: str) -> list[dict]:
    """The rows of the table whose header begins with first_header, each {column: cell}."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split(" | ")])
    header, body = rows[0], rows[2:]
    return [dict(zip(header, row, strict=True)) for row in body]


def test_report_names_the_cpu_by_family_and_model():
    lines = report_markdown(recorded_report()).splitlines()
    assert lines[2].startswith("- Machine: a CPU (family 23, model 1), 2 logical CPUs")


def test_budget_table_gives_bptts_plan_memory_and_time_ratio_at_each_budget():
    markdown = report_markdown(recorded_report())
    rows = table(markdown, "budget (share of the states' bytes)")
    assert [row["budget (share of the states' bytes)"] for row in rows] == [
        *("unbudgeted", "100%", "10%", "1%", "minimum")
    ]
    unbudgeted, full, tenth, hundredth, minimum = rows
    assert unbudgeted["÷ unbudgeted, 2 threads"] == "1.00× (fastest 1.00×)"
    assert full["bytes"] == "792"
    assert full["schedule"] == "segments"
    assert full["measured MiB"] == "2.00"
    assert full["ms, 2 threads"] == "120"
    assert tenth["÷ unbudgeted, 2 threads"] == "1.30× (fastest 1.30×)"
    assert hundredth["bytes"] == "8: below the minimum (50 bytes)"
    assert minimum["schedule"] == "binomial"
    assert "time ÷ unbudgeted ≤ 1.25×: 2 threads 1.30×: NOT met." in markdown
    assert "CPUs busy elsewhere while timed: 2 threads 0.25." in markdown


def test_peers_table_gives_each_peer_at_about_bptts_memory_and_marks_where_it_cannot():
    markdown = report_markdown(recorded_report())
    rows = {row["budget"]: row for row in table(markdown, "budget")}
    assert rows["unbudgeted"]["PyTorch ÷ bptt"] == "4.00× (fastest 4.00×)"
    assert rows["100%"]["PyTorch: segment length"] == "5 (2 segments)"
    assert rows["100%"]["PyTorch MiB"] == "1.50"
    assert rows["100%"]["PyTorch ÷ its unbudgeted"] == "1.50× (fastest 1.50×)"
    assert rows["100%"]["PyTorch ÷ bptt"] == "5.00× (fastest 5.00×)"  # 600 ms ÷ 120 ms
    assert rows["10%"]["PyTorch: segment length"] == "5 (2 segments) ‡"
    assert "JAX: segment length" not in rows["100%"]
    assert "- jax skipped: jax is not installed" in markdown.splitlines()
    curve_rows = table(markdown, "segment length (segments)")
    assert [row["segment length (segments)"] for row in curve_rows] == [
        *("none (unbudgeted)", "5 (2 segments)", "2 (5 segments)")
    ]


def test_long_table_gives_memory_and_time_against_their_targets():
    (row,) = table(report_markdown(recorded_report()), "threads")
    assert row["budgeted: schedule"] == "segments"
    assert row["time ÷ unbudgeted"] == "1.40× (fastest 1.40×)"
    assert row["targets: memory ≤ 64 MiB, time ≤ 1.5×"] == "memory met, time met"
    assert row["CPUs busy elsewhere"] == "0.50"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--cases", "wide"], "--cases: expected some of dense, long, got 'wide'"),
        (["--peers", "tf"], "--peers: unknown tf; expected some of torch, jax"),
        (["--threads", "0"], "--threads: expected comma-separated integers >= 1, got '0'"),
        (["--segments", "a"], "--segments: expected comma-separated integers >= 1, got 'a'"),
    ],
)
def test_bad_options_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_args(argv)
    assert message in capsys.readouterr().err


def test_quick_mode_measures_both_sizes_and_writes_its_record(tmp_path, capsys):
    # Without peers (their imports take seconds; CI's smoke run has them): bptt's cells only.
    argv = ["--quick", "--threads", "1", "--peers", "", "--out", str(tmp_path)]
    assert cli.main(argv) == 0
    markdown = capsys.readouterr().out  # the report, printed
    assert "## Size 1: T=400, B=4, D=16 (dense), H=32, O=16, float32" in markdown
    assert "## Size 2: T=2,000, B=4, D=16 (token ids), H=32, O=16, float32" in markdown
    (folder,) = tmp_path.iterdir()
    assert (folder / "results.json").is_file()
    assert (folder / "results.md").read_text() == markdown
