"""A run's report in Markdown: the machine and the method, a table per thread count (and one of
the recurrent layer alone), the peak memory table and the notes (peers skipped, failed or using
more threads than asked)."""

# ruff: noqa: RUF001, RUF002, RUF003  (×, ÷ are the tables' symbols)

import math

import gemm_limit
import peers

from bptt._model import parameter_shapes

from . import layer
from .children import XLA_ONE_THREAD
from .memory_child import MEMORY_METHOD
from .problem import TOKENS_NOTE, problem_flops, problem_shape, size_and_tokens
from .ratios import target_text

VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni")  # and every avx512*, amx*
# The fractions of the machine's limits a table shows, by their key in the record.
FRACTION_COLUMNS = {
    "sequential_fraction": "sequential chain ÷ bptt",
    "peak_fraction": "bptt ÷ peak sgemm",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"


def fmt_ms(ms: float) -> str:
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def fmt_cell(ms: float, flops: int, entry: dict | None = None) -> str:
    """Median ms · GFLOP/s, and a * when the interquartile range is wider than half the median."""
    noisy = entry is not None and entry["q3_ms"] - entry["q1_ms"] > 0.5 * entry["median_ms"]
    return f"{fmt_ms(ms)} ms · {flops / ms / 1e6:.3g}{' *' if noisy else ''}"


def fmt_bytes(n: float | None) -> str:
    return "—" if n is None else f"{n / 2**20:.2f}"


def fmt_fraction(fraction: float | None) -> str:
    return "—" if fraction is None else f"{100 * fraction:.0f}%"


def has_value(cells, key: str) -> bool:
    return any(cell.get(key) is not None for cell in cells)


def table_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def table_head(header: list[str]) -> list[str]:
    """A Markdown table's header line and the line under it."""
    return [table_row(header), "|" + "---|" * len(header)]


def peer_labels(report: dict) -> dict:
    """Each implementation's label in the tables, by name."""
    labels = {peers.SUBJECT: "bptt"}
    for run in report["runs"]:
        labels |= {name: peers.load(name).NAME for name in run["peers"]}
    return labels


def threads_table(run: dict, labels: dict) -> list[str]:
    n = run["threads"]
    columns = [name for name in peers.PEERS if name in run["peers"]]
    header = ["problem (T, B, D, H, O)", "GFLOP", "bptt", *(labels[c] for c in columns)]
    has_limit = any(gemm_limit.KEY in cell for cell in run["cells"].values())
    fractions = [key for key in FRACTION_COLUMNS if has_value(run["cells"].values(), key)]
    if has_limit:
        header.append("GEMM limit")
    header += [
        "best peer ÷ bptt",
        "limit ÷ bptt" if has_limit else None,
        *(FRACTION_COLUMNS[key] for key in fractions),
        "target",
        "CPUs busy elsewhere",
    ]
    header = [h for h in header if h is not None]
    lines = [
        f"### {plural(n, 'thread')}",
        "",
        (
            "Each cell: median ms · GFLOP/s (the analytic count above); * marks an interquartile "
            "range wider than half the median. Minima: the fastest call of any peer ÷ bptt's "
            "fastest, less sensitive to other processes than the medians' ratio. CPUs busy "
            "elsewhere: other processes' CPU use while the row was measured (the noise of a "
            "shared machine)."
        ),
        "",
        *table_head(header),
    ]
    for name, cell in run["cells"].items():
        flops = problem_flops(name)
        row = [
            f"{name} {tuple(problem_shape(name))}",
            f"{flops / 1e9:.3g}",
            fmt_cell(cell["bptt"]["median_ms"], flops, cell["bptt"]),
        ]
        for column in columns:
            entry = cell["peers"].get(column)
            if not run["peers"][column]["available"]:
                row.append("not installed")
            elif entry is None or entry.get("status") != "ok":
                row.append((entry or {}).get("status", "—").upper())
            else:
                row.append(fmt_cell(entry["median_ms"], flops, entry))
        if has_limit:
            limit = cell.get(gemm_limit.KEY)
            row.append(fmt_cell(limit["median_ms"], flops) if limit is not None else "—")
        ratio = cell["ratio"]
        if ratio is None:
            row.append("—")
        else:
            row.append(
                f"{ratio:.2f}× vs {labels[cell['best_peer']]}"
                + (" (bptt slower)" if ratio < 1 else "")
                + (f"; minima {cell['ratio_of_minima']:.2f}×" if "ratio_of_minima" in cell else "")
            )
        if has_limit:
            row.append(fmt_fraction(cell["limit_fraction"]))
        row += [fmt_fraction(cell.get(key)) for key in fractions]
        row.append(target_text(name, n, cell))
        row.append(fmt_others(cell))
        lines.append(table_row(row))
    return lines


def fmt_others(record: dict) -> str:
    """Other processes' CPU use while a row was measured, and the hypervisor's when it counts."""
    return f"{record['others_cpus']:.2f}" + (
        f" (+{record['steal_cpus']:.2f} stolen)" if record["steal_cpus"] > 0.05 else ""
    )


def layer_table(run: dict, labels: dict) -> list[str]:
    """The recurrent layer alone against the layer peers, at the run's thread count; nothing
    when the run compared no layer."""
    records = {name: cell[layer.KEY] for name, cell in run["cells"].items() if layer.KEY in cell}
    if not records:
        return []
    columns = [name for name in peers.LAYER_PEERS if name in run["peers"]]
    fractions = [key for key in FRACTION_COLUMNS if has_value(records.values(), key)]
    header = [
        "problem (T, B, D, H)",
        "GFLOP",
        "bptt",
        *(labels[c] for c in columns),
        *(f"{labels[c]} ÷ bptt" for c in columns),
        *(FRACTION_COLUMNS[key] for key in fractions),
        "CPUs busy elsewhere",
    ]
    lines = [
        f"### Recurrent layer alone, {plural(run['threads'], 'thread')}",
        "",
        (
            "bptt's layer_forward + layer_backward against each layer peer's forward (training) "
            "+ backward: the states and every gradient (U, W, b, h0, x) from the same dL/dh_t and "
            "dL/dh_T, tanh, float32. Each cell: median ms · GFLOP/s (6·T·B·H·(D + H)); ratio: "
            "the peer's median ÷ bptt's (above 1: bptt faster), and of the fastest calls."
        ),
        "",
        *table_head(header),
    ]
    for name, record in records.items():
        flops = record["flops"]
        row = [
            f"{name} {tuple(record['shape'])}",
            f"{flops / 1e9:.3g}",
            fmt_cell(record["bptt"]["median_ms"], flops, record["bptt"]),
        ]
        ratios = []
        for column in columns:
            entry = record["peers"].get(column)
            if not run["peers"][column]["available"]:
                row.append("not installed")
                ratios.append("—")
            elif entry is None or entry.get("status") != "ok":
                row.append((entry or {}).get("status", "—").upper())
                ratios.append("—")
            else:
                row.append(fmt_cell(entry["median_ms"], flops, entry))
                ratios.append(
                    f"{record['ratios'][column]:.2f}× "
                    f"(minima {record['minima_ratios'][column]:.2f}×)"
                )
        row += ratios
        row += [fmt_fraction(record.get(key)) for key in fractions]
        row.append(fmt_others(record))
        lines.append(table_row(row))
    return lines


def bptt_bound_bytes(name: str) -> int:
    """What bptt must hold for the named problem, float32: the T + 1 states and the
    (T·B)×max(H, O) work buffer."""
    T, B, _, H, O = problem_shape(name)
    return 4 * ((T + 1) * B * H + T * B * max(H, O))


def output_bytes(name: str) -> int:
    """The gradients bptt returns for the named problem, float32: the parameters', h0's and,
    for float inputs, x's."""
    T, B, D, H, O = problem_shape(name)
    tokens = size_and_tokens(name)[1]
    parameters = sum(math.prod(shape) for shape in parameter_shapes(D, H, O).values())
    return 4 * (parameters + B * H + (0 if tokens else T * B * D))


def memory_table(memory: dict, labels: dict) -> list[str]:
    impls = [peers.SUBJECT, *(p for p in peers.PEERS if p in labels)]
    header = [
        "problem",
        "bptt",
        "bptt's bound: activations + work buffer",
        "outputs (gradients)",
        "bptt beyond bound and outputs, in per-step vectors (B·H)",
        *(labels[p] for p in impls[1:]),
    ]
    lines = [
        f"### Peak extra memory, MiB ({plural(memory['threads'], 'thread')})",
        "",
        f"Method: {MEMORY_METHOD}.",
        "",
        *table_head(header),
    ]
    for name, by_impl in memory["cells"].items():
        _, B, _, H, _ = problem_shape(name)
        bound, outputs = bptt_bound_bytes(name), output_bytes(name)
        peak = by_impl.get("bptt", {}).get("peak_extra_bytes")
        if peak is None:
            beyond = "—"
        elif peak <= bound + outputs:
            beyond = "none"
        else:
            extra = peak - bound - outputs
            beyond = f"{fmt_bytes(extra)} = {extra / (4 * B * H):.1f}"
        row = [name, fmt_bytes(peak), fmt_bytes(bound), fmt_bytes(outputs), beyond]
        for impl in impls[1:]:
            entry = by_impl.get(impl, {})
            text = fmt_bytes(entry.get("peak_extra_bytes"))
            if "tracemalloc_peak_bytes" in entry:
                text += f" (tracemalloc {fmt_bytes(entry['tracemalloc_peak_bytes'])})"
            row.append(text)
        lines.append(table_row(row))
    return lines


def report_notes(report: dict) -> list[str]:
    """Peers skipped, failed or mismatched, and peers that kept more CPUs busy than asked."""
    notes = []
    layer_peers = {name for run in report["runs"] for name in run["peers"]} & {*peers.LAYER_PEERS}
    for name in sorted(layer_peers):
        notes.append(
            f"{name}: the recurrent layer alone, without a softmax head: compared in the "
            "tables of the layer alone, on the problems with float inputs, not in the loss's"
        )
    for run in report["runs"]:
        threads = plural(run["threads"], "thread")
        for name, peer in run["peers"].items():
            if not peer["available"]:
                notes.append(f"{name} skipped at {threads}: {peer['note']}")
        for problem, cell in run["cells"].items():
            entries = list(cell["peers"].items())
            entries += [
                (f"{name} (layer)", entry)
                for name, entry in cell.get(layer.KEY, {}).get("peers", {}).items()
            ]
            for name, entry in entries:
                if entry.get("status") not in (None, "ok"):
                    notes.append(
                        f"{name} at {problem}, {threads}: {entry['status']}: "
                        f"{entry.get('note', '')}"
                    )
                elif entry.get("cpu_per_wall", 0) > run["threads"] + 0.3:
                    notes.append(
                        f"{name} at {problem} kept {entry['cpu_per_wall']:.1f} CPUs busy "
                        f"with {threads} asked"
                    )
    return list(dict.fromkeys(notes))


def cpu_lines(machine: dict) -> list[str]:
    """The machine named by its CPU's model name, family and model, and the CPU's vector flags."""
    cpu = machine.get("cpu", {})
    family = (
        f" (family {cpu['family']}, model {cpu['model']})"
        if "family" in cpu and "model" in cpu
        else ""
    )
    return [
        (
            f"- Machine: {machine['cpu_model']}{family}, {machine['logical_cpus']} logical CPUs; "
            f"{machine['platform']}; Python {machine['python']}"
        ),
        *([f"- CPU vector flags: {vector_flags(cpu['flags'])}"] if cpu.get("flags") else []),
    ]


def setup_lines(machine: dict) -> list[str]:
    """The versions, bptt's build and source, NumPy's BLAS and the machine's load."""
    blas = "; ".join(
        f"{p.get('internal_api', '?')} {p.get('version', '')} "
        f"({p.get('architecture', '')}, {p.get('threading_layer', '')})"
        for p in machine["numpy_blas"]
        if p.get("user_api", "blas") == "blas"
    )
    versions = ", ".join(f"{k} {v}" for k, v in machine["versions"].items() if v)
    build = machine["bptt_build_info"]
    source = machine.get("bptt_source", {})
    tuning = ", ".join(machine["openblas_tuning_set"]) or "neither"
    load_start, load_end = (
        " ".join(f"{v:.2f}" for v in machine.get(key) or ())
        for key in ("load_average_start", "load_average_end")
    )
    return [
        f"- Versions: {versions}",
        f"- Source: commit {source.get('commit')}"
        + (", core sources changed since" if source.get("core_sources_changed") else ""),
        (
            f"- bptt kernel: {build.get('instruction_set')} ({build.get('compiler')}, Eigen "
            f"{build.get('eigen_version')}, OpenMP {build.get('openmp')})"
        ),
        f"- NumPy's BLAS: {blas}",
        f"- OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE set: {tuning}",
        (
            f"- Load average at start / end: {load_start} / {load_end}; niceness "
            f"{machine.get('niceness')}"
        ),
    ]


def header_lines(report: dict) -> list[str]:
    """The title, the machine, and how the tables were measured."""
    xla_threads = (
        ", ".join(
            f"{plural(run['threads'], 'thread')}: "
            f"{run['peers']['jax']['versions']['xla_pool_threads']}"
            for run in report["runs"]
            if run["peers"].get("jax", {}).get("available")
        )
        or "jax not run"
    )
    return [
        f"# bptt peer comparison: {report['label']} ({report['timestamp']})",
        "",
        *cpu_lines(report["machine"]),
        *peak_line(report),
        *setup_lines(report["machine"]),
        f"- Command: `{report['command']}`",
        "",
        (
            "Forward+backward: the loss and every gradient bptt returns (U, W, b, V, c, h0, and x "
            'for float inputs), float32, integer targets, reduction "sum". Median of repeats '
            "after warm-up, all implementations interleaved in rounds in one process per thread "
            "count."
        ),
        (
            f"FLOP count: {gemm_limit.FLOP_RULE}. GEMM limit: a baseline, not a bound: the sum "
            "of the medians of those products timed alone with NumPy's BLAS at the same thread "
            "count, one call each (per-step products times T, each call packing W, which the "
            "kernel packs once); limit ÷ bptt above 100%: bptt is faster than the BLAS on its "
            "products. Sequential chain: the 2·T per-step products (B×H)(H×H) timed with NumPy "
            "one after the other at the same thread count, each on the last one's result, as "
            "the recurrence orders them; sequential chain ÷ bptt is the share of bptt's time "
            "that order takes at the BLAS's speed on those products (where they are small, "
            "NumPy's per-call overhead dominates it, and bptt can pass it). bptt ÷ peak sgemm: "
            "bptt's GFLOP/s ÷ NumPy's on the large square product (its fastest call, measured "
            "before and after the sizes), same thread count; the targets at 2 threads hold "
            "bptt's fastest call to it. Ratio: the "
            f"best peer's median ÷ bptt's median (above 1: bptt faster). {TOKENS_NOTE}. JAX's "
            "thread count: XLA's pool is created while the process may run on n CPUs only (XLA "
            f'sizes it from them), and XLA_FLAGS="{XLA_ONE_THREAD}" at 1 thread, which alone '
            f"leaves jax 0.10 a pool thread per core; pool threads seen: {xla_threads}."
        ),
        "",
    ]


def peak_line(report: dict) -> list[str]:
    """The peak sgemm rate of each thread count, when it was measured."""
    peaks = {run["threads"]: run.get(gemm_limit.PEAK_KEY) for run in report["runs"]}
    peaks = {threads: peak for threads, peak in peaks.items() if peak}
    if not peaks:
        return []
    n = next(iter(peaks.values()))["n"]
    rates = ", ".join(
        f"{plural(threads, 'thread')} {peak['gflops']:.3g} GFLOP/s"
        for threads, peak in peaks.items()
    )
    return [f"- Peak sgemm, NumPy's BLAS on ({n}×{n})({n}×{n}), float32: {rates}"]


def vector_flags(flags: list[str]) -> str:
    """The CPU's SIMD flags among its /proc/cpuinfo flags, and whether AVX-512 is there."""
    shown = [f for f in VECTOR_FLAGS if f in flags]
    shown += sorted(f for f in flags if f.startswith(("avx512", "amx")))
    avx512 = any(f.startswith("avx512") for f in flags)
    return f"{' '.join(shown)} ({'with' if avx512 else 'no'} AVX-512); all flags in results.json"


def report_markdown(report: dict) -> str:
    labels = peer_labels(report)
    lines = header_lines(report)
    for run in report["runs"]:
        lines += [*threads_table(run, labels), ""]
        layer_lines = layer_table(run, labels)
        if layer_lines:
            lines += [*layer_lines, ""]
    if report.get("memory"):
        lines += [*memory_table(report["memory"], labels), ""]
    notes = report_notes(report)
    if notes:
        lines += ["### Notes", "", *(f"- {note}" for note in notes), ""]
    return "\n".join(lines)
