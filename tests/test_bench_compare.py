"""The peer comparison (bench/compare.py, the package bench/comparison): its FLOP counts against
a hand count, the machine's limits it times, every installed peer computing the same loss and
gradients as bptt, so that the timings compare the same maths; and what it makes of a recorded
run (the ratios, the fractions of the machine's limits, the Markdown, the changes against a
previous run, the record's files). The oneDNN layer peer: tests/test_bench_onednn.py."""

# ruff: noqa: RUF001, RUF003  (× is the tables' symbol for ratios)

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest

import bptt

# bench/ is a folder of scripts, not a package: its modules import each other by name.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import gemm_limit
import peers
from comparison import layer, records, timing_child
from comparison.agreement import (
    GRAD_TOLERANCE,
    LOSS_TOLERANCE,
    array_errors,
    layer_mismatch_note,
    layer_tolerance,
    mismatch_note,
    relative_errors,
)
from comparison.cli import parse_args
from comparison.diff import ratio_changes
from comparison.machine import cpu_info
from comparison.markdown import bptt_bound_bytes, fmt_bytes, output_bytes, report_markdown
from comparison.problem import Problem, problem_flops
from comparison.ratios import derive, target_text


def test_flop_count_of_the_small_size_matches_a_hand_count():
    T, B, D, H, O = 50, 16, 65, 128, 65  # small
    N = T * B
    forward = 2 * N * D * H + T * 2 * B * H * H + 2 * N * H * O
    backward = 2 * O * N * H + 2 * N * O * H + T * 2 * B * H * H + 2 * H * N * H
    dense_only = 2 * H * N * D + 2 * N * H * D  # dU and dx; the token path scatter-adds instead
    assert gemm_limit.flop_count(T, B, D, H, O) == forward + backward + dense_only == 158_515_200
    token_count = forward - 2 * N * D * H + backward  # no input projection: a row gather
    assert gemm_limit.flop_count(T, B, D, H, O, tokens=True) == token_count == 118_579_200
    assert problem_flops("small") == 158_515_200
    assert problem_flops("small-tokens") == 118_579_200


def test_gemm_limit_times_every_product_at_its_shape():
    for product in gemm_limit.products(3, 2, 4, 5, 6):
        call = gemm_limit.product_call(product)
        call()  # shapes that do not chain would raise here


def test_layer_flop_count_of_the_small_size_is_the_layers_share_of_a_hand_count():
    T, B, D, H = 50, 16, 65, 128  # small, without its head
    N = T * B
    forward = 2 * N * D * H + T * 2 * B * H * H
    backward = T * 2 * B * H * H + 2 * H * N * H + 2 * H * N * D + 2 * N * H * D  # dW, dU, dx
    assert gemm_limit.layer_flop_count(T, B, D, H) == forward + backward
    assert forward + backward == 6 * T * B * H * (D + H)


def test_sequential_chain_multiplies_each_step_by_the_last_ones_result(monkeypatch):
    T, B, H = 5, 3, 4  # T odd: the backward half starts from the other buffer
    call = gemm_limit.sequential_chain_call(T, B, H)
    products, real_matmul = [], np.matmul

    def recording_matmul(left, right, out):
        products.append((left, right, out, float(np.linalg.norm(left))))
        return real_matmul(left, right, out=out)

    monkeypatch.setattr(gemm_limit.np, "matmul", recording_matmul)
    call()
    assert len(products) == 2 * T
    assert all((left.shape, right.shape) == ((B, H), (H, H)) for left, right, *_ in products)
    for previous, current in itertools.pairwise(products):
        assert current[0] is previous[2]
    W = products[T][1]
    assert all(np.array_equal(right, W.T) for _, right, *_ in products[:T])
    assert all(right is W for _, right, *_ in products[T:])
    # W is orthogonal: the values keep their size, neither overflowing nor going denormal.
    np.testing.assert_allclose([norm for *_, norm in products], products[0][3], rtol=1e-5)


def test_peak_sgemm_rate_is_that_of_the_fastest_call_of_every_measurement(monkeypatch):
    fastest_ms = iter([4.0, 2.0, 3.0])
    monkeypatch.setattr(
        timing_child, "measure", lambda cells, **_: {"peak": timing(5.0, next(fastest_ms))}
    )
    args = parse_args(["--quick"])
    peak = timing_child.peak_sgemm(args)
    flops = gemm_limit.peak_sgemm_product().flops
    assert (peak["n"], peak["gflops"]) == (2048, flops / 4.0 / 1e6)
    peak = timing_child.peak_sgemm(args, timing_child.peak_sgemm(args, peak))
    assert peak["gflops"] == flops / 2.0 / 1e6  # other processes only ever slow a call down
    assert [m["min_ms"] for m in peak["measurements"]] == [4.0, 2.0, 3.0]


def test_cpu_info_reads_the_first_processor_of_proc_cpuinfo():
    cpuinfo = (
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 23\nmodel\t\t: 1\n"
        "model name\t: AMD EPYC\nstepping\t: 2\nflags\t\t: fpu avx avx2 fma\n\n"
        "processor\t: 1\ncpu family\t: 6\nmodel\t\t: 85\n"
    )
    assert cpu_info(cpuinfo) == {
        "model_name": "AMD EPYC",
        "family": "23",
        "model": "1",
        "stepping": "2",
        "flags": ["fpu", "avx", "avx2", "fma"],
    }
    assert cpu_info("") == {}


def tiny_problem(tokens: bool) -> Problem:
    T, B, D, H, O = 7, 3, 5, 6, 4
    rng = np.random.default_rng(1)
    params = bptt.init_params(D, H, O, seed=1)
    inputs = (
        rng.integers(0, D, size=(T, B))
        if tokens
        else rng.standard_normal((T, B, D)).astype(np.float32)
    )
    targets = rng.integers(0, O, size=(T, B))
    return Problem("tiny", (T, B, D, H, O), tokens, params, inputs, targets)


@pytest.mark.parametrize("tokens", [False, True], ids=["dense", "tokens"])
@pytest.mark.parametrize("peer", peers.PEERS)
def test_peer_computes_the_loss_and_gradients_of_bptt(peer, tokens):
    module = peers.load(peer)
    if module.unavailable():
        pytest.skip(module.unavailable())
    problem = tiny_problem(tokens)
    subject = peers.load(peers.SUBJECT).Runner(problem)
    subject()
    want_loss, want_grads = subject.result()
    runner = module.Runner(problem)
    runner()
    loss, grads = runner.result()
    # float32 on 7 steps of 3 rows: a few ulps of the largest entry, summed in another order.
    assert loss == pytest.approx(want_loss, rel=1e-5)
    assert set(grads) == set(want_grads)
    for name, want in want_grads.items():
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(grads[name], want, rtol=0, atol=1e-5 * scale, err_msg=name)


# ------------------------------------------------------------------------- a recorded run, read


def timing(median_ms: float, fastest_ms: float | None = None, iqr_ms: float = 0.0) -> dict:
    """A cell's timing as a timing child records it."""
    return {
        "median_ms": median_ms,
        "min_ms": median_ms if fastest_ms is None else fastest_ms,
        "q1_ms": median_ms - iqr_ms / 2,
        "q3_ms": median_ms + iqr_ms / 2,
        "repeats": 5,
        "cpu_per_wall": 1.0,
    }


def recorded_run(threads: int = 1, oracle_ms: float = 6.0, bptt_iqr_ms: float = 0.0) -> dict:
    """A timing child's record of charrnn: bptt at 1.5 ms (fastest 1 ms), the oracle timed
    (fastest 1 ms under its median), PyTorch not installed, JAX's gradients mismatched, the GEMM
    limit at 0.75 ms."""
    return {
        "threads": threads,
        "xla_flags": "",
        "peers": {
            "bptt": {"available": True, "label": "bptt", "versions": {}},
            "oracle": {"available": True, "label": "NumPy oracle", "versions": {}},
            "torch": {"available": False, "note": "torch is not installed"},
            "jax": {"available": True, "label": "JAX jit", "versions": {"xla_pool_threads": 1}},
        },
        "cells": {
            "charrnn": {
                "peers": {
                    "oracle": {"status": "ok", **timing(oracle_ms, oracle_ms - 1)},
                    "jax": {"status": "mismatch", "note": "worst gradient dW 1.0e-01"},
                },
                "loss": 100.0,
                "others_cpus": 0.25,
                "steal_cpus": 0.0,
                "bptt": timing(1.5, 1.0, bptt_iqr_ms),
                gemm_limit.KEY: {"median_ms": 0.75, "products": []},
            }
        },
        "blas": [],
    }


def recorded_report(*runs: dict, memory: dict | None = None) -> dict:
    """A parent's report of the runs, their ratios derived as the parent does."""
    for run in runs:
        derive(run)
    report = {
        "schema": 1,
        "label": "quick",
        "timestamp": "20260101-120000",
        "command": "python bench/compare.py --quick",
        "machine": {
            "cpu_model": "a CPU",
            "cpu": {
                "model_name": "a CPU",
                "family": "23",
                "model": "1",
                "flags": ["fpu", "avx2", "sse4_2", "avx", "fma"],
            },
            "logical_cpus": 2,
            "platform": "Linux",
            "python": "3.12.0",
            "versions": {"bptt": "0.1.0", "numpy": "2.0.0"},
            "bptt_build_info": {"instruction_set": "avx2"},
            "bptt_source": {"commit": "0123abc", "core_sources_changed": False},
            "numpy_blas": [],
            "openblas_tuning_set": [],
            "load_average_start": [0.5, 0.5, 0.5],
            "load_average_end": [0.5, 0.5, 0.5],
            "niceness": 0,
        },
        "runs": list(runs),
    }
    if memory is not None:
        report["memory"] = memory
    return report


def with_machine_limits(run: dict, sequential_ms: float = 0.3, peak_gflops: float = 10.0) -> dict:
    """The run with the sequential chain timed on charrnn and the peak sgemm rate measured."""
    run["cells"]["charrnn"][gemm_limit.SEQUENTIAL_KEY] = {**timing(sequential_ms), "products": 50}
    run[gemm_limit.PEAK_KEY] = {"n": 2048, "gflops": peak_gflops, "measurements": [timing(1.0)]}
    return run


def with_layer(run: dict, onednn: dict) -> dict:
    """The run with oneDNN compared on charrnn's layer, bptt's layer at 1 ms (fastest 0.8)."""
    run["peers"]["onednn"] = {"available": True, "label": "oneDNN RNN", "versions": {}}
    run["cells"]["charrnn"][layer.KEY] = {
        "shape": [25, 1, 65, 100],
        "flops": gemm_limit.layer_flop_count(25, 1, 65, 100),
        "tolerance": 6e-5,
        "bptt": timing(1.0, 0.8),
        "peers": {"onednn": onednn},
        "others_cpus": 0.5,
        "steal_cpus": 0.0,
    }
    return run


def table(markdown: str, heading: str) -> list[dict]:
    """The rows of the table under a Markdown heading (up to the next one), each {column: cell}."""
    lines = markdown.splitlines()
    section = itertools.takewhile(
        lambda line: not line.startswith("#"), lines[lines.index(heading) + 1 :]
    )
    rows = [
        [cell.strip() for cell in line.strip("|").split(" | ")]
        for line in section
        if line.startswith("|")
    ]
    header, body = rows[0], rows[2:]  # rows[1] is the |---| line
    return [dict(zip(header, row, strict=True)) for row in body]


def test_derive_reads_the_best_peer_and_the_ratios_from_the_medians():
    run = recorded_run()
    derive(run)
    cell = run["cells"]["charrnn"]
    assert cell["best_peer"] == "oracle"  # JAX mismatched: not timed, not a candidate
    assert cell["ratio"] == 6.0 / 1.5
    assert cell["ratio_of_minima"] == 5.0 / 1.0
    assert cell["limit_fraction"] == 0.75 / 1.5


def test_derive_gives_no_ratio_when_no_peer_was_timed():
    run = recorded_run()
    del run["cells"]["charrnn"]["peers"]["oracle"]
    derive(run)
    cell = run["cells"]["charrnn"]
    assert (cell["best_peer"], cell["ratio"]) == (None, None)
    assert "ratio_of_minima" not in cell


def test_threads_table_gives_medians_gflops_ratio_and_target():
    markdown = report_markdown(recorded_report(recorded_run()))
    (row,) = table(markdown, "### 1 thread")
    flops = problem_flops("charrnn")  # 3.45 MFLOP: GFLOP/s = flops / ms / 1e6
    assert row["problem (T, B, D, H, O)"] == "charrnn (25, 1, 65, 100, 65)"
    assert row["GFLOP"] == f"{flops / 1e9:.3g}"
    assert row["bptt"] == f"1.5 ms · {flops / 1.5e6:.3g}"
    assert row["NumPy oracle"] == f"6 ms · {flops / 6e6:.3g}"
    assert row["PyTorch eager"] == "not installed"
    assert row["JAX jit"] == "MISMATCH"
    assert row["GEMM limit"] == f"0.75 ms · {flops / 0.75e6:.3g}"
    assert row["best peer ÷ bptt"] == "4.00× vs NumPy oracle; minima 5.00×"
    assert row["limit ÷ bptt"] == "50%"
    assert row["target"] == "≥ 1× every peer met"
    assert row["CPUs busy elsewhere"] == "0.25"


def test_derive_gives_the_fractions_of_the_machine_limits_bptt_reaches():
    run = with_machine_limits(recorded_run(), sequential_ms=0.3, peak_gflops=10.0)
    derive(run)
    cell = run["cells"]["charrnn"]
    assert cell["sequential_fraction"] == 0.3 / 1.5
    assert cell["peak_fraction"] == problem_flops("charrnn") / 1.5e6 / 10.0


def test_threads_table_gives_the_fractions_of_the_machine_limits_and_the_header_the_peak():
    markdown = report_markdown(recorded_report(with_machine_limits(recorded_run())))
    (row,) = table(markdown, "### 1 thread")
    assert row["sequential chain ÷ bptt"] == "20%"
    assert row["bptt ÷ peak sgemm"] == f"{100 * problem_flops('charrnn') / 1.5e6 / 10:.0f}%"
    assert "- Peak sgemm, NumPy's BLAS on (2048×2048)(2048×2048), float32: 1 thread 10 GFLOP/s" in (
        markdown.splitlines()
    )


def test_threads_table_leaves_out_the_limits_a_run_did_not_measure():
    markdown = report_markdown(recorded_report(recorded_run()))
    (row,) = table(markdown, "### 1 thread")
    assert "sequential chain ÷ bptt" not in row
    assert "bptt ÷ peak sgemm" not in row
    assert "Peak sgemm" not in markdown


def test_header_names_the_cpu_by_family_and_model_with_its_vector_flags():
    lines = report_markdown(recorded_report(recorded_run())).splitlines()
    assert lines[2].startswith("- Machine: a CPU (family 23, model 1), 2 logical CPUs; ")
    assert lines[3] == (
        "- CPU vector flags: sse4_2 avx avx2 fma (no AVX-512); all flags in results.json"
    )


def test_layer_table_gives_each_layer_peer_against_bptts_layer():
    run = with_layer(with_machine_limits(recorded_run()), {"status": "ok", **timing(1.5, 1.2)})
    markdown = report_markdown(recorded_report(run))
    (row,) = table(markdown, "### Recurrent layer alone, 1 thread")
    flops = gemm_limit.layer_flop_count(25, 1, 65, 100)
    assert row["problem (T, B, D, H)"] == "charrnn (25, 1, 65, 100)"
    assert row["GFLOP"] == f"{flops / 1e9:.3g}"
    assert row["bptt"] == f"1 ms · {flops / 1e6:.3g}"
    assert row["oneDNN RNN"] == f"1.5 ms · {flops / 1.5e6:.3g}"
    assert row["oneDNN RNN ÷ bptt"] == "1.50× (minima 1.50×)"
    assert row["sequential chain ÷ bptt"] == "30%"
    assert row["bptt ÷ peak sgemm"] == f"{100 * flops / 1e6 / 10:.0f}%"
    assert row["CPUs busy elsewhere"] == "0.50"
    (loss_row,) = table(markdown, "### 1 thread")
    assert "oneDNN RNN" not in loss_row  # no softmax head: the layer's table only


def test_a_layer_peer_that_disagrees_is_marked_and_noted_not_timed():
    note = "worst W 1.0e-01 (tolerance 6.0e-05): not timed"
    run = with_layer(recorded_run(), {"status": "mismatch", "note": note})
    markdown = report_markdown(recorded_report(run))
    (row,) = table(markdown, "### Recurrent layer alone, 1 thread")
    assert (row["oneDNN RNN"], row["oneDNN RNN ÷ bptt"]) == ("MISMATCH", "—")
    assert f"- onednn (layer) at charrnn, 1 thread: mismatch: {note}" in markdown.splitlines()


def test_a_layer_peer_not_installed_is_noted_and_no_layer_table_written():
    run = recorded_run()
    run["peers"]["onednn"] = {"available": False, "note": "oneDNN is not installed"}
    markdown = report_markdown(recorded_report(run))
    assert "### Recurrent layer alone" not in markdown
    notes = markdown.split("### Notes\n\n", 1)[1].splitlines()
    assert "- onednn skipped at 1 thread: oneDNN is not installed" in notes
    assert notes[0].startswith("- onednn: the recurrent layer alone, without a softmax head")


def test_threads_table_marks_a_median_whose_interquartile_range_exceeds_half_of_it():
    markdown = report_markdown(recorded_report(recorded_run(bptt_iqr_ms=0.8)))
    (row,) = table(markdown, "### 1 thread")
    assert row["bptt"].endswith(" *")
    assert not row["NumPy oracle"].endswith(" *")


@pytest.mark.parametrize(
    ("oracle_ms", "target"),
    [(6.0, "≥ 4× met"), (5.0, "≥ 4× MISSED")],  # charrnn's target at 2 threads: 4× the best peer
)
def test_threads_table_holds_two_threads_against_the_size_target(oracle_ms, target):
    markdown = report_markdown(recorded_report(recorded_run(threads=2, oracle_ms=oracle_ms)))
    (row,) = table(markdown, "### 2 threads")
    assert row["target"] == target


@pytest.mark.parametrize(
    ("fastest", "met"), [(0.96, "met"), (0.94, "MISSED"), (None, None)], ids=str
)
def test_two_threads_at_large_are_held_to_95_percent_of_peak_sgemm_by_the_fastest_call(
    fastest, met
):
    cell = {"ratio": 2.0, "peak_fraction": 0.5, "peak_fraction_of_fastest": fastest}
    peak_target = f", ≥ 95% of peak sgemm {met}" if met else ""
    assert target_text("large", 2, cell) == f"≥ 1.25× met{peak_target}"
    assert target_text("large", 1, cell) == "≥ 1× every peer met"  # 1 thread: the peers only


def test_report_notes_the_peers_skipped_and_mismatched():
    markdown = report_markdown(recorded_report(recorded_run()))
    notes = markdown.split("### Notes\n\n", 1)[1].splitlines()
    assert notes == [
        "- torch skipped at 1 thread: torch is not installed",
        "- jax at charrnn, 1 thread: mismatch: worst gradient dW 1.0e-01",
    ]


@pytest.mark.parametrize("name", ["charrnn", "charrnn-tokens"])
def test_memory_outputs_are_the_gradients_bptt_returns(name):
    problem = Problem.make(name)
    result = bptt.loss_and_grad(problem.params, problem.inputs, problem.targets)
    assert output_bytes(name) == sum(grad.nbytes for grad in result.grads.values())


@pytest.mark.parametrize(
    ("extra_vectors", "beyond"),
    [(0, "none"), (2, f"{fmt_bytes(2 * 4 * 100)} = 2.0")],  # charrnn's per-step vector: B·H = 100
)
def test_memory_table_gives_what_bptt_holds_beyond_its_bound_and_outputs(extra_vectors, beyond):
    held = bptt_bound_bytes("charrnn") + output_bytes("charrnn")
    peak = held + extra_vectors * 4 * 100
    memory = {"threads": 1, "cells": {"charrnn": {"bptt": {"peak_extra_bytes": peak}}}}
    markdown = report_markdown(recorded_report(recorded_run(), memory=memory))
    (row,) = table(markdown, "### Peak extra memory, MiB (1 thread)")
    assert row["bptt"] == fmt_bytes(peak)
    assert row["bptt beyond bound and outputs, in per-step vectors (B·H)"] == beyond
    assert row["NumPy oracle"] == "—"  # not measured


def test_ratio_changes_compare_each_peer_with_itself():
    previous = recorded_report(recorded_run(oracle_ms=6.0))
    now_run = recorded_run(oracle_ms=3.0)
    now_run["cells"]["small"] = now_run["cells"]["charrnn"]  # not in the previous run: left out
    text = ratio_changes(recorded_report(now_run), previous, "previous/results.json")
    assert text.splitlines()[0].startswith("Against previous/results.json (20260101-120000)")
    (row,) = table("# changes\n" + text.split("\n", 1)[1], "# changes")
    assert row["threads"] == "1"
    assert row["problem"] == "charrnn"
    assert row["bptt ms before → now"] == "1.5 → 1.5"
    assert row["NumPy oracle"] == "4.00 → 2.00 (0.50×)"
    assert row["JAX jit"] == "—"  # mismatched in both: no ratio to compare


def test_ratio_changes_say_when_the_runs_cpus_differ():
    previous = recorded_report(recorded_run())
    assert "CPUs differ" not in ratio_changes(recorded_report(recorded_run()), previous, "p")
    now = recorded_report(recorded_run())
    now["machine"]["cpu"]["model"] = "17"
    text = ratio_changes(now, previous, "p")
    assert text.endswith(
        "Note: the runs' CPUs differ (a CPU family 23 model 1 before, a CPU family 23 model 17 now)."
    )


def test_ratio_changes_compare_the_layer_peers_too():
    previous = recorded_report(with_layer(recorded_run(), {"status": "ok", **timing(2.0)}))
    now = recorded_report(with_layer(recorded_run(), {"status": "ok", **timing(1.5)}))
    text = ratio_changes(now, previous, "previous/results.json")
    (row,) = table("# changes\n" + text.split("\n", 1)[1], "# changes")
    assert row["oneDNN RNN (layer)"] == "2.00 → 1.50 (0.75×)"


def test_a_saved_run_has_a_dated_folder_and_latest_copies(tmp_path):
    report = recorded_report(recorded_run())
    markdown = report_markdown(report)
    folder, note = records.save(report, markdown, tmp_path, chart=False, latest=True)
    assert (folder, note) == (tmp_path / "20260101-120000-quick", None)
    assert sorted(path.name for path in folder.iterdir()) == ["results.json", "results.md"]
    assert (tmp_path / "latest.md").read_text() == markdown + "\n"
    assert records.load(tmp_path / "latest.json") == records.load(folder)


def test_a_part_of_a_run_leaves_latest_as_it_was(tmp_path):
    report = recorded_report(recorded_run())
    folder, _ = records.save(report, report_markdown(report), tmp_path, chart=False, latest=False)
    assert (folder / "results.json").is_file()
    assert not (tmp_path / "latest.json").exists()


@pytest.mark.parametrize(
    ("argv", "whole"),
    [
        ([], True),
        (["--quick"], False),
        (["--sizes", "large"], False),
        (["--peers", "onednn,limit"], False),
        (["--no-memory"], False),
        (["--threads", "2"], False),
        (["--threads", "1,2,4", "--rounds", "5"], True),
    ],
    ids=str,
)
def test_only_a_run_of_every_size_peer_and_measure_is_a_whole_one(argv, whole):
    assert parse_args(argv).whole_run is whole


def test_render_of_latest_rewrites_the_markdown_the_run_wrote(tmp_path):
    report = recorded_report(recorded_run())
    records.save(report, report_markdown(report), tmp_path, chart=False, latest=True)
    written = (tmp_path / "latest.md").read_text()
    (tmp_path / "latest.md").unlink()
    markdown, _ = records.render(tmp_path / "latest.json", chart=False)
    assert (tmp_path / "latest.md").read_text() == markdown + "\n" == written


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--sizes", "huge"], "--sizes"),
        (["--peers", "tensorflow"], "--peers"),
        (["--threads", "0"], "--threads"),
        (["--threads", "two"], "--threads"),
        (["--compare", "no/such/results.json"], "--compare"),
        (["--render", "no/such/folder"], "--render"),
    ],
)
def test_bad_options_are_refused_naming_the_option(argv, option, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv)
    assert exit_info.value.code == 2
    assert f"error: {option}: " in capsys.readouterr().err


def test_a_peer_within_the_tolerances_is_timed_and_one_beyond_them_is_not():
    ref_grads = {"W": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)}
    close = {name: grad * (1 + GRAD_TOLERANCE / 2) for name, grad in ref_grads.items()}
    assert mismatch_note(*relative_errors(100.0, close, 100.0, ref_grads)) is None
    far = {**close, "W": ref_grads["W"] * (1 + 2 * GRAD_TOLERANCE)}
    assert "worst gradient dW" in mismatch_note(*relative_errors(100.0, far, 100.0, ref_grads))
    off_loss = 100.0 * (1 + 2 * LOSS_TOLERANCE)
    assert "loss relative error" in mismatch_note(*relative_errors(off_loss, close, 100, ref_grads))


def test_a_peer_with_a_nan_in_its_loss_or_a_gradient_is_not_timed():
    ref_grads = {"W": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)}
    nan_grads = {**ref_grads, "b": np.array([1.0, np.nan], np.float32)}
    assert "worst gradient db" in mismatch_note(*relative_errors(1.0, nan_grads, 1.0, ref_grads))
    assert "loss relative error" in mismatch_note(
        *relative_errors(np.nan, ref_grads, 1.0, ref_grads)
    )
    errors = array_errors({"h": np.full(3, np.nan)}, {"h": np.ones(3)})
    assert layer_mismatch_note(errors, layer_tolerance(5, 2, 3, 4)) is not None


def test_a_gradient_missing_or_of_another_shape_is_a_mismatch():
    ref_grads = {"W": np.ones((2, 2), np.float32), "b": np.ones(2, np.float32)}
    _, errors = relative_errors(1.0, {"W": np.ones((2, 3), np.float32)}, 1.0, ref_grads)
    assert errors == {"W": math.inf, "b": math.inf}
