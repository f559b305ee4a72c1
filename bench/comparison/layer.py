"""The recurrent layer compared alone, in the timing child: bptt's layer_forward + layer_backward
against the layer peers (oneDNN's RNN primitive, which has no softmax head to compare in the
loss), on each float problem's inputs and weights, from the same upstream gradients dL/dh_t and
dL/dh_T; each peer's states and gradients checked against bptt's first, then all timed in
interleaved rounds."""

import sys

import gemm_limit
import peers

from .agreement import array_errors, layer_mismatch_note, layer_tolerance
from .problem import LayerProblem
from .timing import OtherLoad, measure, measure_options

KEY = "layer"  # a problem's record of the layer comparison, beside its loss's


def checked_runner(module, problem: LayerProblem, reference: dict, tolerance: float):
    """A layer peer's runner and its record: status "ok" (then the runner is returned for
    timing), "error" or "mismatch" (then None)."""
    try:
        runner = module.LayerRunner(problem)
        runner()
        hidden, grads = runner.result()
    except Exception as error:  # noqa: BLE001 (a peer failing here is reported, not fatal)
        return {"status": "error", "note": f"{type(error).__name__}: {error}"}, None
    errors = array_errors({"hidden": hidden, **grads}, reference)
    entry = {"rel_errors": errors, "implementation": getattr(runner, "implementation", None)}
    note = layer_mismatch_note(errors, tolerance)
    if note:
        return {**entry, "status": "mismatch", "note": note}, None
    return {**entry, "status": "ok"}, runner


def time_layer(problem_name: str, subject, layer_modules: dict, args) -> dict:
    """One float problem's layer record: every layer peer's check, the timings of all."""
    problem = LayerProblem.make(problem_name)
    tolerance = layer_tolerance(*problem.shape)
    record = {
        "shape": problem.shape,
        "flops": gemm_limit.layer_flop_count(*problem.shape),
        "tolerance": tolerance,
        "peers": {},
    }
    bptt_runner = subject.LayerRunner(problem)
    bptt_runner()
    hidden, grads = bptt_runner.result()
    reference = {"hidden": hidden, **grads}
    cells = {peers.SUBJECT: (bptt_runner, 1.0, True)}
    for name, module in layer_modules.items():
        entry, runner = checked_runner(module, problem, reference, tolerance)
        record["peers"][name] = entry
        if runner is None:
            print(f"  {name} (layer): {entry['status']}, {entry['note']}", file=sys.stderr)
            continue
        cells[name] = (runner, 1.0, True)
    with OtherLoad() as load:
        timings = measure(cells, **measure_options(args))
    record.update(others_cpus=load.others_cpus, steal_cpus=load.steal_cpus)
    record["bptt"] = timings.pop(peers.SUBJECT)
    for name, timing in timings.items():
        record["peers"][name].update(timing)
    return record
