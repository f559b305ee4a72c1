"""Coverage-guided fuzzing of the public NumPy API with atheris: loss_and_grad, forward,
layer_forward, layer_backward, head_logits, head_loss_and_grad, memory_plan and init_params.

Each input is read (atheris.FuzzedDataProvider) as one call: a valid problem of a few elements
an axis (or a zero-size one with an extent of 2**40 or more, or a sequence of 64 steps), then
changes to its arguments, each of which the harness knows to be harmless (a layout: Fortran
order, strides, negative strides, byte order, misaligned, read-only, a list, a memoryview; a
token-id dtype; an alias between arguments; a tame value), or to allow or call for errors (a
dtype, a shape, NaN or inf, an id out of range, an out= array that is unusable or shares memory
with an argument or another out= array, a memory budget, an option's value). Every call must:

- raise only the ValueError, TypeError or MemoryError that its changes allow, naming an argument
  (a MemoryError names none), and raise when a change calls for it;
- or return results of the documented types, shapes and dtype, equal to the NumPy oracle's
  (bptt.reference) to rounding (tests/closeness.py's tolerance, with the scales of
  tests/test_core_vs_oracle.py), when its values are tame; and the same bits from the same
  call on another thread count, without out= and without a memory budget;
- leave every argument as it was (out= arrays hold the gradients and nothing around them);
- and warn of nothing.

memory_plan and init_params, which have no oracle, are held to what they document (a plan
within its budget that holds its stored states, the plan loss_and_grad follows under that
budget; uniform draws within ±1/sqrt(H), the same for the same seed).

    pip install atheris
    PYTHONPATH=python python tests/fuzz/fuzz_api.py -max_total_time=60
    PYTHONPATH=python python tests/fuzz/fuzz_api.py -max_total_time=3600 CORPUS_DIR
    PYTHONPATH=python python tests/fuzz/fuzz_api.py --describe crash-<hash>   # the call, in words

Any other libFuzzer flag works too; without a corpus directory, one is made in the work
directory ($BPTT_FUZZ_WORK_DIR or a new temporary one, printed). A finding is saved as
crash-<hash>: rerun it with the file as the only argument.
"""

# ruff: noqa: RUF002, RUF003  (σ and ± are the model's symbols)

import contextlib
import math
import numbers
import os
import sys
import tempfile
import types
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import atheris
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the oracle's scales

with atheris.instrument_imports(include=["bptt"]):
    import bptt
    from bptt import _model, reference

import closeness
import test_core_vs_oracle as oracle_scales

PARAM_NAMES = _model.PARAM_NAMES
LAYER_PARAMS, HEAD_PARAMS = PARAM_NAMES[:3], PARAM_NAMES[3:]
HUGE_EXTENTS = (2**40, 2**50)  # zero-size arrays with such an axis cost nothing to make
HUGE_VIEW_ELEMENTS = 2**48  # a broadcast view this large cannot be copied in any address space

# The arrays each function takes (besides params), the params it reads, and its options.
ARRAYS = {
    "loss_and_grad": ("inputs", "targets", "h0"),
    "forward": ("inputs", "h0"),
    "layer_forward": ("inputs", "h0", "lengths"),
    "layer_backward": ("inputs", "hidden", "h0", "d_hidden", "d_h_last", "lengths"),
    "head_logits": ("hidden",),
    "head_loss_and_grad": ("hidden", "targets"),
}
READS = {
    "loss_and_grad": PARAM_NAMES,
    "forward": PARAM_NAMES,
    "layer_forward": LAYER_PARAMS,
    "layer_backward": LAYER_PARAMS,
    "head_logits": HEAD_PARAMS,
    "head_loss_and_grad": HEAD_PARAMS,
}
OPTIONS = {
    "loss_and_grad": ("activation", "reduction", "check_finite", "input_grad"),
    "forward": ("activation", "check_finite"),
    "layer_forward": ("activation", "reverse", "check_finite"),
    "layer_backward": ("activation", "reverse", "check_finite", "input_grad"),
    "head_logits": ("check_finite",),
    "head_loss_and_grad": ("reduction", "check_finite"),
}
OPTIONAL_ARRAYS = ("h0", "d_hidden", "d_h_last", "lengths")
# Unbatched results lack the batch axis: axis 1 of these, axis 0 of the states.
BY_STEP = ("hidden", "logits", "d_hidden", "grads['x']")
STATES = ("h_last", "grads['h0']")


# -- what a call's changes allow ---------------------------------------------------------------


@dataclass
class Verdict:
    """What the changes made to a call allow: the errors it may raise, whether it must raise
    one, and whether its results can still be compared with the oracle's."""

    errors: set = field(default_factory=set)
    must_fail: list = field(default_factory=list)
    incomparable: list = field(default_factory=list)
    reinterpreted: list = field(default_factory=list)  # results of other shapes, perhaps
    notes: list = field(default_factory=list)
    out_of_range: list = field(default_factory=list)  # ids and lengths beyond the sizes drawn
    resized: list = field(default_factory=list)  # arrays of another shape, perhaps other sizes

    def due_to_fail(self) -> list:
        """The changes that no call can answer: an id or a length beyond the sizes drawn may be
        within those of another valid call that an array of another shape makes (an id 1 of
        inputs, with U one column wider)."""
        if not self.resized:
            return self.must_fail
        return [note for note in self.must_fail if note not in self.out_of_range]

    def harmless(self, note: str) -> None:
        self.notes.append(note)

    def invalid(self, note: str, *errors: type[Exception]) -> None:
        """A change that no result can answer: one of `errors` is due."""
        self.notes.append(f"{note} (invalid)")
        self.errors.update(errors)
        self.must_fail.append(note)

    def allow(self, note: str, *errors: type[Exception]) -> None:
        """A change that may be refused with one of `errors`, or give the oracle's results."""
        self.notes.append(f"{note} (may raise)")
        self.errors.update(errors)

    def ambiguous(self, note: str, *errors: type[Exception]) -> None:
        """A change that may be refused, or read as another valid call: results not compared."""
        self.allow(note, *errors)
        self.incomparable.append(note)
        self.reinterpreted.append(note)

    def untame(self, note: str) -> None:
        """Valid values beyond the oracle's tolerances (or non-finite ones, unchecked)."""
        self.notes.append(note)
        self.incomparable.append(note)


@dataclass
class Problem:
    """A problem's sizes, dtype and kinds, and its values: batched, as the oracle takes them."""

    T: int
    B: int
    D: int
    H: int
    O: int
    dtype: type
    tokens: bool
    soft: bool
    unbatched: bool
    huge: bool
    params: dict
    arrays: dict  # inputs, targets, hidden, h0, d_hidden, d_h_last, lengths (None: not given)
    options: dict = field(default_factory=dict)  # what the options mean: activation, reverse...


@dataclass
class Call:
    function: str
    kwargs: dict
    verdict: Verdict
    problem: Problem | None = None
    threads: int = 1
    out_vector: np.ndarray | None = None  # out= views' vector, NaN outside them
    memory_allowed: bool = False  # a result needs more memory than any machine has


# -- drawing -----------------------------------------------------------------------------------


def pick(fdp, options):
    return options[fdp.ConsumeIntInRange(0, len(options) - 1)]


def draw_problem(fdp, function: str) -> Problem:
    size_class = fdp.ConsumeIntInRange(0, 19)
    huge = size_class == 19
    if huge:  # one axis far too long for memory, the other empty
        extent = pick(fdp, HUGE_EXTENTS)
        T, B = (extent, 0) if fdp.ConsumeBool() else (0, extent)
    elif size_class == 18:  # long enough for the chunked schedule and its pipeline
        T, B = fdp.ConsumeIntInRange(64, 72), 4
    else:  # input used up: a problem of a few steps of a few sequences
        T, B = pick(fdp, [3, 2, 4, 1, 0]), pick(fdp, [2, 3, 1, 0])
    D, H, O = (pick(fdp, [3, 2, 4, 1]) for _ in range(3))
    unbatched = not huge and fdp.ConsumeBool()
    if unbatched:
        B = 1
    dtype = pick(fdp, [np.float32, np.float64])
    tokens, soft = fdp.ConsumeBool(), fdp.ConsumeBool()
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
    # Params as init_params draws them, scaled (0: every product exactly zero); the long
    # sequences keep the scale of test_core_vs_oracle's problems, where the tolerance was set.
    scale = 1.0 if size_class == 18 else pick(fdp, [1.0, 0.5, 2.0, 0.0])
    bound = scale / np.sqrt(H)
    params = {
        name: rng.uniform(-bound, bound, shape).astype(dtype)
        for name, shape in _model.parameter_shapes(D, H, O).items()
    }
    if tokens:
        inputs = rng.integers(0, D, (T, B)) if not huge else np.zeros((T, B), np.int64)
    else:
        inputs = (
            (rng.standard_normal((T, B, D)) / np.sqrt(D)).astype(dtype)
            if not huge
            else (np.zeros((T, B, D), dtype))
        )
    if soft:
        targets = rng.random((T, B, O)).astype(dtype) if not huge else np.zeros((T, B, O), dtype)
    else:
        targets = rng.integers(0, O, (T, B)) if not huge else np.zeros((T, B), np.int64)
        targets[rng.random(targets.shape) < pick(fdp, [0.0, 0.3, 1.0])] = -1
    arrays = {
        "inputs": inputs,
        "targets": targets,
        "hidden": rng.uniform(-1, 1, (T, B, H)).astype(dtype) if not huge else (
            np.zeros((T, B, H), dtype)
        ),
        "h0": rng.uniform(-1, 1, (B, H)).astype(dtype),
        "d_hidden": rng.standard_normal((T, B, H)).astype(dtype),
        "d_h_last": rng.standard_normal((B, H)).astype(dtype),
        "lengths": rng.integers(0, T + 1, B),
    } if not huge else {
        "inputs": inputs, "targets": targets, "hidden": np.zeros((T, B, H), dtype),
        "h0": None if B else np.zeros((0, H), dtype), "d_hidden": np.zeros((T, B, H), dtype),
        "d_h_last": None if B else np.zeros((0, H), dtype),
        "lengths": None if B else np.zeros(0, np.int64),
    }  # fmt: skip
    for name in OPTIONAL_ARRAYS:
        if name in ARRAYS[function] and arrays[name] is not None and fdp.ConsumeBool():
            arrays[name] = None
    return Problem(T, B, D, H, O, dtype, tokens, soft, unbatched, huge, params, arrays)


TAME_VALUES = ["zero", "-zero", "one", "-one", "subnormal"]
UNTAME_VALUES = ["1e4", "1e30", "max", "-max", "tiny"]
NON_FINITE_VALUES = ["nan", "inf", "-inf"]


def special_value(name: str, dtype) -> float:
    info = np.finfo(dtype)
    return {
        "zero": 0.0, "-zero": -0.0, "one": 1.0, "-one": -1.0,
        "subnormal": float(info.smallest_subnormal), "1e4": 1e4, "1e30": 1e30,
        "max": float(info.max), "-max": -float(info.max), "tiny": float(info.tiny),
        "nan": np.nan, "inf": np.inf, "-inf": -np.inf,
    }[name]  # fmt: skip


def inject_values(fdp, p: Problem, function: str, verdict: Verdict, names: list) -> None:
    """Special values in some of the named arrays (the oracle's values change with them), or
    the arrays broadcast along an axis (the same values in every row)."""
    check_finite = p.options["check_finite"]
    for name in names:
        if fdp.ConsumeIntInRange(0, 7):
            continue  # one array in eight
        key = name[8:-2] if name.startswith("params") else None
        array = p.params[key] if key else p.arrays.get(name)
        if array is None or array.size == 0 or p.huge:
            continue
        read = key in READS[function] if key else True
        array = np.array(array)
        index = fdp.ConsumeIntInRange(0, array.size - 1)
        if array.dtype.kind in "iu":
            value = inject_id(fdp, name, p, verdict, read)
            array.flat[index] = value
        elif fdp.ConsumeBool():  # broadcast along one axis
            axis = fdp.ConsumeIntInRange(0, array.ndim - 1)
            array = np.broadcast_to(np.take(array, [0], axis=axis), array.shape)
            verdict.harmless(f"{name} broadcast along axis {axis}")
        else:
            kind = pick(fdp, TAME_VALUES + UNTAME_VALUES + NON_FINITE_VALUES)
            array.flat[index] = special_value(kind, array.dtype)
            if kind in NON_FINITE_VALUES and read and check_finite:
                verdict.invalid(f"{name} holds {kind}", ValueError)
            elif kind in TAME_VALUES or not read:
                verdict.harmless(f"{name} holds {kind}")
            else:
                verdict.untame(f"{name} holds {kind}")
        if key:
            p.params[key] = array
        else:
            p.arrays[name] = array
        if function == "layer_backward" and name == "hidden":
            verdict.untame("hidden: no longer the states of layer_forward")


def inject_id(fdp, name: str, p: Problem, verdict: Verdict, read: bool) -> int:
    """An id or a length: in range, or out of it."""
    if name == "lengths":
        value = pick(fdp, [0, p.T, -1, p.T + 1, 2**62])
        valid = 0 <= value <= p.T
    else:
        upper = p.D if name == "inputs" else p.O
        lowest = 0 if name == "inputs" else -1
        value = pick(fdp, [lowest, upper - 1, upper, lowest - 1, 2**63 - 1, -(2**63)])
        valid = lowest <= value < upper
    note = f"{name} holds id {value}"
    if valid or not read:
        verdict.harmless(note)
    else:
        verdict.invalid(note, ValueError)
        verdict.out_of_range.append(note)
    return value


def draw_aliases(fdp, p: Problem, function: str, verdict: Verdict) -> None:
    """Arguments that are the same array (when their shapes agree): each read, never written."""
    candidates = [
        ("params['U']", "params['W']", p.D == p.H),
        ("params['V']", "params['W']", p.O == p.H),
        ("params['c']", "params['b']", p.O == p.H),
        ("d_h_last", "h0", "d_h_last" in ARRAYS[function]),
    ]
    for first, second, possible in candidates:
        if possible and fdp.ConsumeBool():
            value = lookup(p, second)
            if value is not None and lookup(p, first) is not None:
                store(p, first, value)
                verdict.harmless(f"{first} is {second}")


def lookup(p: Problem, name: str):
    return p.params[name[8:-2]] if name.startswith("params") else p.arrays[name]


def store(p: Problem, name: str, value) -> None:
    if name.startswith("params"):
        p.params[name[8:-2]] = value
    else:
        p.arrays[name] = value


FLAGS_VALID = [True, False, np.True_, np.False_]
FLAGS_INVALID = [0, 1, None, "False", np.array(True)]


def draw_options(fdp, p: Problem, function: str, verdict: Verdict) -> dict:
    """The options' arguments; p.options gets what they mean."""
    kwargs = {}
    meaning = {"activation": "tanh", "reduction": "sum", "check_finite": True,
               "input_grad": True, "reverse": False}  # fmt: skip
    for name in OPTIONS[function]:
        if not fdp.ConsumeBool():
            continue  # the default
        odd = fdp.ConsumeIntInRange(0, 7) == 0  # one value in eight of another kind
        if name in ("activation", "reduction"):
            choices = _model.ACTIVATIONS if name == "activation" else _model.REDUCTIONS
            others = [np.str_(choices[-1]), "TANH", "", None, 1, b"sum"]
            value = pick(fdp, others if odd else choices)
            if isinstance(value, str) and value in choices:
                meaning[name] = str(value)
            elif isinstance(value, str):
                verdict.invalid(f"{name}={value!r}", ValueError)
            else:
                verdict.invalid(f"{name}={value!r}", TypeError)
        else:
            value = pick(fdp, (FLAGS_VALID[2:] + FLAGS_INVALID) if odd else FLAGS_VALID[:2])
            if isinstance(value, bool | np.bool_):
                meaning[name] = bool(value)
            else:
                verdict.invalid(f"{name}={value!r}", TypeError)
        kwargs[name] = value
    p.options = meaning
    return kwargs


def layer_hidden(p: Problem) -> np.ndarray:
    """The core's hidden states for the problem's (batched) values: layer_backward reads σ'(a_t)
    from them, so they must be those of its other arguments."""
    if p.huge:
        return np.zeros((p.T, p.B, p.H), p.dtype)
    with contextlib.suppress(ValueError, TypeError):  # ids out of range: the call fails anyway
        return bptt.layer_forward(
            {k: p.params[k] for k in LAYER_PARAMS}, p.arrays["inputs"], h0=p.arrays["h0"],
            activation=p.options["activation"], lengths=p.arrays["lengths"],
            reverse=p.options["reverse"], check_finite=False,
        ).hidden  # fmt: skip
    return np.zeros((p.T, p.B, p.H), p.dtype)


def unbatched_value(name: str, value):
    """The unbatched form of a batched value of one sequence."""
    if value is None or name == "lengths":
        return value
    if name in ("h0", "d_h_last"):
        return value[0]
    return value[:, 0]  # inputs, targets, hidden, d_hidden


# -- changes to one array argument -------------------------------------------------------------


LAYOUTS = ["byte order", "Fortran order", "strided", "negative strides", "misaligned",
           "read-only", "memoryview"]  # fmt: skip
OTHER_CHANGES = ["list", "dtype", "shape", "0-d", "None", "huge broadcast view"]
OTHER_DTYPES = [np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
                np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_, object, "U8"]  # fmt: skip


def relaid(array: np.ndarray, layout: str):
    """The same values in another layout."""
    if layout == "byte order":
        return array.astype(array.dtype.newbyteorder())
    if layout == "Fortran order":
        return np.asfortranarray(array)
    if layout == "strided":
        doubled = np.zeros((*array.shape, 2), array.dtype)
        doubled[..., 0] = array
        return doubled[..., 0]
    if layout == "negative strides":
        backwards = (slice(None, None, -1),) * array.ndim
        return np.ascontiguousarray(array[backwards])[backwards]
    if layout == "misaligned":
        buffer = np.zeros(array.nbytes + 32, np.uint8)
        offset = (-buffer.ctypes.data) % 16 + 1
        moved = np.ndarray(array.shape, array.dtype, buffer=buffer, offset=offset)
        moved[...] = array
        return moved
    if layout == "read-only":
        copy = array.copy()
        copy.flags.writeable = False
        return copy
    return memoryview(np.ascontiguousarray(array))


def changed_array(fdp, name: str, value, p: Problem, function: str, verdict: Verdict):
    """The argument for `value`: as it is, relaid, or changed in a way the verdict notes."""
    changes = LAYOUTS + OTHER_CHANGES
    change = fdp.ConsumeIntInRange(0, 8 * len(changes))  # one argument in eight changed
    if value is None or change >= len(changes):
        return value
    change = changes[change]
    if p.huge and change in ("list", "shape"):
        return value  # a list of 2**40 rows, or an empty axis made long, would fill the memory
    # params that the function does not read may be anything
    unread = name.startswith("params") and name[8:-2] not in READS[function]
    rank_decides = name in ("inputs", "hidden")  # batched or unbatched, ids or floats
    note = f"{name}: {change}"
    if change in LAYOUTS:
        if value.dtype.hasobject and change == "memoryview":
            return value
        verdict.harmless(note)
        return relaid(value, change)
    if unread:
        verdict.harmless(note)
    if change == "list":
        listed = value.tolist()
        converted = np.asarray(listed)
        if converted.dtype == value.dtype and converted.shape == value.shape:
            verdict.harmless(note)
        elif not unread:
            # floats listed read as float64: valid if the call's other arrays changed alike
            other_float = value.dtype.kind == "f" and converted.dtype.kind == "f"
            ambiguous = rank_decides or params_dtype(name, converted.dtype) or other_float
            flag_change(verdict, note, ambiguous, converted.shape == value.shape)
        return listed
    if change == "dtype":
        new = np.dtype(pick(fdp, OTHER_DTYPES))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            changed = value.astype(new)
        note = f"{name}: dtype {new}"
        same_ids = value.dtype.kind in "iu" and new.kind in "iu" and same_values(changed, value)
        if new == value.dtype or same_ids or unread:
            verdict.harmless(note)
        elif new.kind in "iu" and value.dtype.kind in "iu":
            verdict.invalid(note + " wraps ids", ValueError)
        else:
            # a float array in the other float dtype: valid if the call's others changed alike
            other_float = value.dtype.kind == "f" and new in (np.float32, np.float64)
            ambiguous = rank_decides or params_dtype(name, new) or other_float
            flag_change(verdict, note, ambiguous, same_shape=True)
        return changed
    if change == "shape":
        changed, how = reshaped(fdp, value)
        if not unread:
            # another shape may be a valid call when the call's other arrays changed alike
            verdict.ambiguous(f"{note} {how}", ValueError, TypeError)
            verdict.resized.append(note)
        return changed
    if change == "0-d":
        changed = np.asarray(value.flat[0] if value.size else value.dtype.type(0))
    elif change == "None":
        if name in OPTIONAL_ARRAYS or name.startswith("params"):
            return value  # None is an optional array's default; params: below
        changed = None
    else:  # huge broadcast view: its copy cannot be made
        changed = huge_view(value)
        if not unread:
            verdict.invalid(f"{note} {changed.shape}", MemoryError, ValueError, TypeError)
        return changed
    if not unread:
        if rank_decides:
            verdict.ambiguous(note, ValueError, TypeError)
        else:
            verdict.invalid(note, ValueError, TypeError)
    return changed


def params_dtype(name: str, dtype: np.dtype) -> bool:
    """A parameter in float32 or float64: U's dtype is the call's, and if every parameter's
    changed alike, the call is valid in the other dtype."""
    return name.startswith("params") and dtype in (np.float32, np.float64)


def flag_change(verdict: Verdict, note: str, rank_decides: bool, same_shape: bool) -> None:
    """A dtype that differs: TypeError, or, for arrays whose rank and dtype decide how they are
    read (float inputs or ids, batched or not), perhaps another valid call."""
    if rank_decides:
        verdict.ambiguous(note, ValueError, TypeError)
    elif same_shape:
        verdict.invalid(note, TypeError, ValueError)
    else:
        verdict.invalid(note, ValueError, TypeError)


def same_values(changed: np.ndarray, value: np.ndarray) -> bool:
    return changed.shape == value.shape and all(
        int(a) == int(b) for a, b in zip(changed.flat, value.flat, strict=True)
    )


def reshaped(fdp, value: np.ndarray) -> tuple[np.ndarray, str]:
    """value with an axis more or fewer, or one axis longer or shorter by one."""
    how = pick(fdp, ["axis before", "axis after", "axis dropped", "longer", "shorter"])
    axis = fdp.ConsumeIntInRange(0, max(value.ndim - 1, 0))
    if how == "axis before":
        return value[None], how
    if how == "axis after" or value.ndim == 0 or (how == "shorter" and not value.shape[axis]):
        return value[..., None], "axis after"
    if how == "axis dropped":
        if value.shape[-1] == 0:
            return np.zeros(value.shape[:-1], value.dtype), how
        return np.take(value, 0, axis=-1), how
    if how == "longer":
        row = list(value.shape)
        row[axis] = 1
        extra = np.take(value, [0], axis) if value.shape[axis] else np.zeros(row, value.dtype)
        return np.concatenate([value, extra], axis), f"{how} on axis {axis}"
    return np.take(value, range(value.shape[axis] - 1), axis), f"{how} on axis {axis}"


def huge_view(value: np.ndarray) -> np.ndarray:
    """A broadcast view of HUGE_VIEW_ELEMENTS or more of value's dtype and rank (at least 2)."""
    side = math.isqrt(HUGE_VIEW_ELEMENTS)
    shape = (side, side, *value.shape[2:]) if value.ndim >= 2 else (side, side)
    return np.broadcast_to(np.zeros((), value.dtype), shape)


# -- out= ------------------------------------------------------------------------------------


OUT_CHANGES = ["dtype", "shape", "transposed", "negative strides", "read-only", "list",
               "shares an argument's memory", "overlaps another", "unknown key", "not a dict"]  # fmt: skip


def draw_out(fdp, call: Call, grads: dict) -> object:
    """None, or arrays by gradient name (separate, or views of one vector with NaN around them),
    perhaps one of them unusable."""
    style = fdp.ConsumeIntInRange(0, 2)
    if style == 0 or not grads:
        return None
    p, verdict = call.problem, call.verdict
    names = [name for name in grads if fdp.ConsumeBool()] or [next(iter(grads))]
    if style == 1:
        out = {name: np.full(grads[name], np.nan, p.dtype) for name in names}
    else:
        sizes = [math.prod(grads[name]) for name in names]
        vector = np.full(sum(sizes) + len(sizes) + 1, np.nan, p.dtype)
        out, start = {}, 1
        for name, size in zip(names, sizes, strict=True):
            out[name] = vector[start : start + size].reshape(grads[name])
            start += size + 1
        call.out_vector = vector
    verdict.harmless(f"out: {', '.join(names)}{' (views of one vector)' if style == 2 else ''}")
    change = fdp.ConsumeIntInRange(0, 2 * len(OUT_CHANGES))
    if change >= len(OUT_CHANGES):
        return out
    change = OUT_CHANGES[change]
    name = pick(fdp, names)
    array = out[name]
    note = f"out['{name}']: {change}"
    if change == "dtype":
        out[name] = array.astype(np.float32 if p.dtype == np.float64 else np.float64)
        verdict.invalid(note, TypeError)
    elif change == "shape":
        out[name] = np.full((*array.shape, 1), np.nan, p.dtype)
        verdict.invalid(note, ValueError)
    elif change in ("transposed", "negative strides") and array.ndim >= 2:
        changed = np.full(array.shape[::-1], np.nan, p.dtype).T
        if change == "negative strides":
            changed = np.full(array.shape, np.nan, p.dtype)[::-1]
        out[name] = changed
        if changed.flags.c_contiguous:  # a single row is contiguous either way
            verdict.harmless(note)
        else:
            verdict.invalid(note, ValueError)
    elif change == "read-only":
        array.flags.writeable = False
        verdict.invalid(note, ValueError)
    elif change == "list":
        out[name] = array.tolist()
        verdict.invalid(note, TypeError)
    elif change == "shares an argument's memory":
        candidates = argument_memories(call, array.nbytes)
        buffers = [candidate for candidate in candidates if candidate[2]]
        if candidates and array.nbytes:  # through a buffer that is no array, every other time
            owner, memory, buffer = pick(
                fdp, buffers if buffers and fdp.ConsumeBool() else candidates
            )
            out[name] = memory[: array.nbytes].view(p.dtype).reshape(array.shape)
            verdict.invalid(f"{note} ({owner}{', a memoryview' if buffer else ''})", ValueError)
    elif change == "overlaps another":
        others = [n for n in names if n != name and out[n].size and out[n].size <= array.size]
        if others and array.size:
            other = others[0]
            out[other] = array.reshape(-1)[: out[other].size].reshape(out[other].shape)
            verdict.invalid(f"out['{other}'] overlaps out['{name}']", ValueError)
    elif change == "unknown key":
        key = pick(fdp, ["Z", 1, "x", "h_last"])
        if key not in grads:
            out[key] = np.zeros(1, p.dtype)
            verdict.invalid(f"out[{key!r}]", ValueError)
    elif change == "not a dict":
        if fdp.ConsumeBool():
            verdict.invalid("out: a list", TypeError)
            return list(out.values())
        verdict.allow("out: a mapping proxy", TypeError)
        return types.MappingProxyType(out)
    return out


def argument_memories(call: Call, nbytes: int) -> list[tuple[str, np.ndarray, bool]]:
    """The writable bytes of the arguments (arrays, or memoryviews) at least nbytes long, by
    argument, and whether the argument is a memoryview."""
    params = call.kwargs["params"]
    arguments = (
        [(f"params['{k}']", v) for k, v in params.items()]
        if isinstance(params, dict | types.MappingProxyType)
        else []
    )
    arguments += [(k, call.kwargs.get(k)) for k in ("inputs", "targets", "h0")]
    memories = []
    for owner, value in arguments:
        buffer = isinstance(value, memoryview)
        if buffer:
            value = np.asarray(value)
        if (
            isinstance(value, np.ndarray) and value.flags.c_contiguous
            and value.flags.writeable and value.nbytes >= nbytes and not value.dtype.hasobject
        ):  # fmt: skip
            memories.append((owner, value.reshape(-1).view(np.uint8), buffer))
    return memories


def returned_grads(p: Problem, function: str) -> dict:
    """The gradients a call of loss_and_grad returns, with the shapes its caller sees."""
    shapes = dict(_model.parameter_shapes(p.D, p.H, p.O))
    shapes["h0"] = (p.H,) if p.unbatched else (p.B, p.H)
    if not p.tokens and p.options["input_grad"]:
        shapes["x"] = (p.T, p.D) if p.unbatched else (p.T, p.B, p.D)
    return shapes


def draw_budget(fdp, p: Problem, verdict: Verdict) -> object:
    """A memory budget: ample, near the problem's minimum, below it, or not one."""
    choice = fdp.ConsumeIntInRange(0, 12)
    note = "memory_budget="
    if choice == 0:
        minimum = 0
        if p.T and p.B and not p.huge:
            minimum = bptt.memory_plan(
                p.T, p.B, p.D, p.H, p.O, dtype=np.dtype(p.dtype).name, tokens=p.tokens
            ).minimum_bytes
        value = minimum + fdp.ConsumeIntInRange(-2, 4096)
        if value < 1 or value < minimum:
            verdict.invalid(f"{note}{value} (the minimum is {minimum})", ValueError)
        else:  # the arguments' copies count too
            verdict.allow(f"{note}{value} (the minimum is {minimum})", ValueError)
        return value
    value = [1 << 30, "1 GiB", " 2GB ", np.int64(1 << 30), 1, 0, -1, 1.5e9, True, "12 XB",
             "0.1B", "", 2**63, 2**64, "16 EiB"][choice - 1]  # fmt: skip
    if isinstance(value, float | bool):
        verdict.invalid(f"{note}{value!r}", TypeError)
    elif value in (1 << 30, "1 GiB", " 2GB ") or (value == 1 and p.T * p.B == 0):
        verdict.allow(f"{note}{value!r}", ValueError)  # enough unless copies were huge
    elif (isinstance(value, int) and value >= 2**63) or value == "16 EiB":
        verdict.allow(f"{note}{value!r} (more than any machine has)", ValueError)
    else:
        verdict.invalid(f"{note}{value!r}", ValueError)
    return value


def draw_params_mapping(fdp, params: dict, function: str, verdict: Verdict) -> object:
    choice = fdp.ConsumeIntInRange(0, 39)  # one call in eight: another mapping
    model = READS[function] == PARAM_NAMES
    if choice == 1:
        verdict.harmless("params: a mapping proxy")
        return types.MappingProxyType(params)
    if choice == 2:
        extra = {**params, "extra": np.zeros(1)}
        if model:
            verdict.invalid("params: an extra key", ValueError)
        else:
            verdict.harmless("params: an extra key")
        return extra
    if choice == 3:
        name = pick(fdp, list(PARAM_NAMES))
        fewer = {k: v for k, v in params.items() if k != name}
        if name in READS[function] or model:
            verdict.invalid(f"params: {name} missing", ValueError)
        else:
            verdict.harmless(f"params: {name} missing")
        return fewer
    if choice == 4:
        verdict.invalid("params: a list", TypeError)
        return list(params.values())
    if choice == 5:
        name = pick(fdp, list(PARAM_NAMES))
        if name in READS[function]:
            verdict.invalid(f"params['{name}'] is None", TypeError, ValueError)
        return {**params, name: None}
    return params


def draw_array_call(fdp, function: str) -> Call:
    verdict = Verdict()
    p = draw_problem(fdp, function)
    call = Call(function, {}, verdict, p)
    options = draw_options(fdp, p, function, verdict)
    draw_aliases(fdp, p, function, verdict)
    names = [*(f"params['{k}']" for k in PARAM_NAMES), *ARRAYS[function]]
    if function == "layer_backward":
        inject_values(fdp, p, function, verdict, [n for n in names if n != "hidden"])
        p.arrays["hidden"] = layer_hidden(p)
        inject_values(fdp, p, function, verdict, ["hidden"])
        if p.options["check_finite"] and not np.isfinite(p.arrays["hidden"]).all():
            # the layer's states overflowed from the values drawn: hidden is the argument refused
            verdict.invalid("hidden holds the states of a layer that overflowed", ValueError)
    else:
        inject_values(fdp, p, function, verdict, names)
    if p.huge and p.B and function != "head_logits" and function != "head_loss_and_grad":
        call.memory_allowed = True  # the states (B, H)
    params = {}
    for name in PARAM_NAMES:
        params[name] = changed_array(fdp, f"params['{name}']", p.params[name], p, function, verdict)
    kwargs = {"params": draw_params_mapping(fdp, params, function, verdict)}
    for name in ARRAYS[function]:
        value = unbatched_value(name, p.arrays[name]) if p.unbatched else p.arrays[name]
        kwargs[name] = changed_array(fdp, name, value, p, function, verdict)
    if p.unbatched and "lengths" in ARRAYS[function] and p.arrays["lengths"] is not None:
        if any(note.startswith("inputs") for note in verdict.reinterpreted):
            verdict.allow("lengths with inputs perhaps batched", ValueError)
        else:
            verdict.invalid("lengths with unbatched inputs", ValueError)
    kwargs.update(options)
    call.kwargs = kwargs
    if function == "loss_and_grad":
        if fdp.ConsumeBool():
            kwargs["memory_budget"] = draw_budget(fdp, p, verdict)
        if not p.huge:
            out = draw_out(fdp, call, returned_grads(p, function))
            if out is not None:
                kwargs["out"] = out
    return call


# -- memory_plan and init_params ---------------------------------------------------------------


SIZE_ARGUMENTS = [1, 2, 3, 4, 5, np.int64(3), 64, 300, 0, -1, True, 2.0, "3", None, 2**40,
                  2**62, 2**63]  # fmt: skip


def valid_size(value, name: str = "") -> bool:
    least = 0 if name in ("T", "B") else 1  # no steps or no sequences: a call computing nothing
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def size_error(value) -> type[Exception]:
    """What an invalid size raises: TypeError if it is no integer, ValueError if too small."""
    integer = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return ValueError if integer else TypeError


def valid_float_dtype(dtype) -> bool:
    """float32 or float64, native byte order (None, NumPy's float64, is refused)."""
    try:
        return dtype is not None and np.dtype(dtype) in (np.float32, np.float64)
    except TypeError:
        return False


def draw_size(fdp, name: str, verdict: Verdict, small: bool):
    value = pick(fdp, SIZE_ARGUMENTS[:8] if small else SIZE_ARGUMENTS)
    if not valid_size(value, name):
        verdict.invalid(f"{name}={value!r}", size_error(value))
    elif value >= 2**40:
        verdict.allow(f"{name}={value}", ValueError, TypeError, MemoryError, OverflowError)
    return value


def draw_memory_plan(fdp) -> Call:
    verdict = Verdict()
    small = fdp.ConsumeIntInRange(0, 3) > 0
    sizes = [draw_size(fdp, name, verdict, small) for name in "TBDHO"]
    dtype = pick(fdp, ["float32", "float64", np.float32, "f4", ">f8", None, "float16", "int64",
                       "bogus", object()])  # fmt: skip
    dtype_name = np.dtype(dtype).name if valid_float_dtype(dtype) else None
    if dtype_name is None:
        verdict.invalid(f"dtype={dtype!r}", TypeError)
    tokens = pick(fdp, [False, True, np.True_, 0, None])
    if not isinstance(tokens, bool | np.bool_):
        verdict.invalid(f"tokens={tokens!r}", TypeError)
    kwargs = {"dtype": dtype, "tokens": tokens}
    if fdp.ConsumeBool():
        problem = None
        valid = all(valid_size(s, n) and s < 2**40 for s, n in zip(sizes, "TBDHO", strict=True))
        if valid and dtype_name in ("float32", "float64"):
            T, B, D, H, O = (int(s) for s in sizes)
            problem = Problem(T, B, D, H, O, np.dtype(dtype_name).type, bool(tokens), False,
                              False, False, {}, {})  # fmt: skip
        kwargs["memory_budget"] = (
            draw_budget(fdp, problem, verdict)
            if problem
            else (pick(fdp, [None, 1 << 30, "1 GiB", 1, 0, -1.0, "bogus"]))
        )
        budget = kwargs["memory_budget"]
        if not problem and budget is not None and not isinstance(budget, int | str):
            verdict.invalid(f"memory_budget={budget!r}", TypeError)
        elif not problem and budget is not None:
            verdict.allow(f"memory_budget={budget!r}", ValueError)
    return Call("memory_plan", dict(zip("TBDHO", sizes, strict=True)) | kwargs, verdict)


def draw_init_params(fdp) -> Call:
    verdict = Verdict()
    sizes = {}
    for name in ("input_size", "hidden_size", "output_size"):
        value = pick(fdp, [1, 2, 3, 4, np.int64(3), 0, -1, True, 2.0, "3", None, 2**40, 2**64])
        if not valid_size(value):
            verdict.invalid(f"{name}={value!r}", size_error(value))
        elif value >= 2**40:
            verdict.invalid(f"{name}={value}", MemoryError)
        sizes[name] = value
    dtype = pick(fdp, [np.float32, np.float64, "float32", "f8", float, ">f4", None, np.float16,
                       "int32", "bogus", np.complex64, "f4,f4"])  # fmt: skip
    if not valid_float_dtype(dtype):
        verdict.invalid(f"dtype={dtype!r}", TypeError)
    seed = pick(fdp, [None, 0, 1, 2**64 + 1, np.int64(5), np.uint64(3), -1, 1.5, "1", [1, 2]])
    if seed is not None and not valid_size(seed, "T"):  # an integer >= 0
        verdict.invalid(f"seed={seed!r}", size_error(seed))
    return Call("init_params", {**sizes, "dtype": dtype, "seed": seed}, verdict)


def draw_call(fdp) -> Call:
    function = pick(fdp, [*ARRAYS, "memory_plan", "init_params"])
    threads = fdp.ConsumeIntInRange(1, 3)
    bptt.set_num_threads(threads)  # before any plan is drawn: plans depend on it
    if function == "memory_plan":
        call = draw_memory_plan(fdp)
    elif function == "init_params":
        call = draw_init_params(fdp)
    else:
        call = draw_array_call(fdp, function)
    call.threads = threads
    return call


# -- running and checking ----------------------------------------------------------------------


ARGUMENT_NAMES = {
    "memory_plan": ("T", "B", "D", "H", "O", "dtype", "tokens", "memory_budget"),
    "init_params": ("input_size", "hidden_size", "output_size", "dtype", "seed"),
}


def named_arguments(function: str) -> set:
    """The names an error's message may begin with: the function's arguments, a parameter's
    or an out= array's."""
    if function in ARGUMENT_NAMES:
        return set(ARGUMENT_NAMES[function])
    names = {"params", *ARRAYS[function], *OPTIONS[function], "out", "memory_budget"}
    names |= {f"params['{k}']" for k in PARAM_NAMES}
    names |= {f"out['{k}']" for k in (*PARAM_NAMES, "h0", "x")}
    return names


def invoke(call: Call, threads: int | None = None, **changes):
    """The call, at its thread count or `threads`, with some arguments changed or _ABSENT."""
    kwargs = {**call.kwargs, **changes}
    kwargs = {k: v for k, v in kwargs.items() if v is not _ABSENT}
    bptt.set_num_threads(threads or call.threads)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning is a finding
        return getattr(bptt, call.function)(**kwargs)


_ABSENT = object()


def snapshot(call: Call) -> list:
    """Copies of every array the call is given (memoryviews' too), to compare afterwards."""
    arrays = []

    def add(value):
        if isinstance(value, memoryview):
            value = np.asarray(value)
        if isinstance(value, np.ndarray) and value.size < HUGE_VIEW_ELEMENTS:
            arrays.append((value, value.copy()))
        elif isinstance(value, dict | types.MappingProxyType):
            for item in value.values():
                add(item)
        elif isinstance(value, list):
            for item in value:
                add(item)

    for name, value in call.kwargs.items():
        if name != "out":
            add(value)
    out = call.kwargs.get("out")
    return arrays + ([] if out is None else [("out", out_snapshot(out))])


def out_snapshot(out) -> list:
    values = out.values() if isinstance(out, dict | types.MappingProxyType) else out
    return [(v, v.copy()) for v in values if isinstance(v, np.ndarray)]


def assert_unchanged(copies: list, include_out: bool) -> None:
    for array, copy in copies:
        if isinstance(array, str):
            if include_out:
                assert_unchanged(copy, include_out)
            continue
        same = array.dtype == copy.dtype and array.tobytes() == copy.tobytes()
        assert same, f"an argument was modified: {describe_value(array)}"


def run_one(call: Call) -> None:
    verdict = call.verdict
    copies = snapshot(call)
    error = None
    try:
        result = invoke(call)
    except (ValueError, TypeError, MemoryError) as raised:
        error = raised
    if error is not None:
        assert_unchanged(copies, include_out=True)
        allowed = set(verdict.errors) | ({MemoryError} if call.memory_allowed else set())
        assert any(isinstance(error, kind) for kind in allowed), (
            f"{type(error).__name__} not allowed here ({', '.join(k.__name__ for k in allowed)}"
            f" are): {error}"
        )
        named = str(error).partition(":")[0]
        assert isinstance(error, MemoryError) or named in named_arguments(call.function), (
            f"the error names no argument: {error}"
        )
        return
    due = verdict.due_to_fail()
    assert not due, f"accepted: {'; '.join(due)}"
    assert_unchanged(copies, include_out=False)
    CHECKS[call.function](call, result)


# -- what a successful call returns ------------------------------------------------------------


def flattened(function: str, result) -> dict:
    """The call's results by name, its types checked."""
    if function == "loss_and_grad":
        assert isinstance(result, bptt.LossAndGrad)
        assert type(result.loss) is float
        grads = {f"grads['{k}']": v for k, v in result.grads.items()}
        return {"loss": np.asarray(result.loss), **grads, "h_last": result.h_last}
    if function == "forward":
        assert isinstance(result, bptt.ForwardResult)
        return result._asdict()
    if function == "layer_forward":
        assert isinstance(result, bptt.LayerForwardResult)
        return result._asdict()
    if function == "layer_backward":
        assert type(result) is dict
        return {f"grads['{k}']": v for k, v in result.items()}
    if function == "head_logits":
        return {"logits": result}
    assert isinstance(result, bptt.HeadLossAndGrad)
    assert type(result.loss) is float
    grads = {f"grads['{k}']": v for k, v in result.grads.items()}
    return {"loss": np.asarray(result.loss), **grads, "d_hidden": result.d_hidden}


def batched_result(name: str, array: np.ndarray, unbatched: bool) -> np.ndarray:
    if not unbatched:
        return array
    if name in BY_STEP:
        return np.expand_dims(array, 1)
    return np.expand_dims(array, 0) if name in STATES else array


def expected_shapes(call: Call) -> dict:
    p, function = call.problem, call.function
    T, B, D, H, O = p.T, p.B, p.D, p.H, p.O
    layer = {"grads['U']": (H, D), "grads['W']": (H, H), "grads['b']": (H,),
             "grads['h0']": (B, H)}  # fmt: skip
    if not p.tokens and p.options["input_grad"]:
        layer["grads['x']"] = (T, B, D)
    head = {"grads['V']": (O, H), "grads['c']": (O,)}
    return {
        "loss_and_grad": {"loss": (), **layer, **head, "h_last": (B, H)},
        "forward": {"hidden": (T, B, H), "logits": (T, B, O), "h_last": (B, H)},
        "layer_forward": {"hidden": (T, B, H), "h_last": (B, H)},
        "layer_backward": layer,
        "head_logits": {"logits": (T, B, O)},
        "head_loss_and_grad": {"loss": (), **head, "d_hidden": (T, B, H)},
    }[function]


def check_array_result(call: Call, result) -> None:
    p = call.problem
    results = {
        name: batched_result(name, np.asarray(value), p.unbatched)
        for name, value in flattened(call.function, result).items()
    }
    if call.verdict.reinterpreted:
        return None
    shapes = expected_shapes(call)
    assert results.keys() == shapes.keys(), f"results {sorted(results)} != {sorted(shapes)}"
    for name, array in results.items():
        assert array.shape == shapes[name], f"{name}: shape {array.shape} != {shapes[name]}"
        assert array.ndim == 0 or array.dtype == p.dtype, f"{name}: dtype {array.dtype}"
    if "hidden" in results and "h_last" in results:
        assert not np.shares_memory(results["hidden"], results["h_last"]), "h_last is no copy"
    check_out(call, result)
    if p.huge:
        return check_empty_problem(call, results)
    if call.verdict.incomparable:
        return None
    compare_with_oracle(call, results)
    # The same bits at another thread count, with new arrays and no budget.
    copied = {name: array.copy() for name, array in results.items()}
    again = invoke(call, threads=call.threads % 3 + 1, out=_ABSENT, memory_budget=_ABSENT)
    for name, array in flattened(call.function, again).items():
        array = batched_result(name, np.asarray(array), p.unbatched)
        assert array.tobytes() == copied[name].tobytes(), (
            f"{name}: other bits at {call.threads % 3 + 1} threads without out= and budget"
        )
    return None


def check_out(call: Call, result) -> None:
    out = call.kwargs.get("out")
    if not isinstance(out, dict | types.MappingProxyType):
        return
    for name, array in out.items():
        assert result.grads[name] is array, f"grads['{name}'] is not out['{name}']"
    if call.out_vector is not None:
        covered = np.zeros(call.out_vector.shape, bool)
        for array in out.values():
            if not np.shares_memory(array, call.out_vector):
                continue
            start = (array.ctypes.data - call.out_vector.ctypes.data) // array.itemsize
            covered[start : start + array.size] = True
        assert np.isnan(call.out_vector[~covered]).all(), "out= wrote outside its arrays"


def check_empty_problem(call: Call, results: dict) -> None:
    """T or B is zero: a zero loss, zero gradients, and h_last = h0 (zeros without it)."""
    p = call.problem
    h0 = p.arrays["h0"]
    for name, array in results.items():
        if name == "h_last" and h0 is not None:
            assert np.array_equal(array, h0), "h_last != h0"
        else:
            assert not array.any(), f"{name}: not zero"


def widened(array):
    return (
        None
        if array is None
        else np.asarray(array).astype(
            np.float64 if np.asarray(array).dtype.kind == "f" else np.asarray(array).dtype
        )
    )


def compare_with_oracle(call: Call, results: dict) -> None:
    """Each result against the oracle's in float64 on the same values, to rounding."""
    p, function = call.problem, call.function
    dtype, steps = p.dtype, p.T
    arrays, options = p.arrays, p.options
    problem = oracle_scales.Problem(dict(p.params), arrays["inputs"], arrays["targets"],
                                    arrays["h0"])  # fmt: skip
    expected = {}  # name -> (value, scale, chain length)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if function in ("loss_and_grad", "forward"):
            if function == "forward":
                problem = problem._replace(targets=np.zeros((p.T, p.B), np.int64))
            oracle, fwd, loss_scale, scales, forward_scales = oracle_scales.oracle_with_scales(
                problem, options["activation"], options["reduction"]
            )
            if function == "loss_and_grad":
                expected["loss"] = (oracle.loss, loss_scale, steps)
                for name, grad in oracle.grads.items():
                    if name != "x" or options["input_grad"]:
                        expected[f"grads['{name}']"] = (grad, scales[name], steps)
                expected["h_last"] = (oracle.h_last, forward_scales["h_last"], steps)
            else:
                for name in ("hidden", "logits", "h_last"):
                    expected[name] = (getattr(fwd, name), forward_scales[name], steps)
        elif function in ("layer_forward", "layer_backward"):
            expected = layer_expectations(p, function)
        else:
            expected = head_expectations(p, function)
    beyond = {}  # name -> the failure
    for name, (value, scale, chain) in expected.items():
        # The problems are of unit size: a result that cancels to less than its terms, of a
        # few units, is judged at the scale of 1 (closeness.magnitude's floor).
        scale = max(float(np.max(scale, initial=0.0)), 1.0)
        try:
            oracle_scales.assert_close(results[name], value, scale, dtype, chain, name)
        except AssertionError as failure:
            beyond[name] = failure
    if beyond:
        assert_within_rounding_noise(p, function, results, beyond)


# What rounding alone does where the recurrence amplifies it: the oracle evaluated in the
# call's dtype against the oracle in a wider one (long double's 64 bits for float64).
WIDER = {np.dtype(np.float32): np.float64, np.dtype(np.float64): np.longdouble}


def assert_within_rounding_noise(p: Problem, function: str, results: dict, beyond: dict) -> None:
    """The tolerances above take rounding to grow with the chain's length at the scale of the
    exact terms. An expanding recurrence (W of spectral radius above 1, as broadcast rows make
    it) multiplies the rounding of each step by the chain's growth instead, and where the exact
    gradients cancel (identical rows of V, say), no evaluation in the call's dtype comes near
    them. Results beyond those tolerances pass if they are no further from the exact values than
    closeness.GROWTH times the oracle's own evaluation in the same dtype: what rounding alone
    does on this problem."""
    same = oracle_results(p, function, p.dtype)
    exact = oracle_results(p, function, WIDER[np.dtype(p.dtype)])
    for name, failure in beyond.items():
        noise = float(np.max(np.abs(same[name] - exact[name]), initial=0.0))
        error = float(np.max(np.abs(results[name] - exact[name]), initial=0.0))
        if not error <= closeness.GROWTH * noise:
            raise AssertionError(
                f"{failure}; {closeness.GROWTH} times the oracle's own "
                f"rounding in {np.dtype(p.dtype)}: {closeness.GROWTH * noise:.3g}"
            )


def oracle_results(p: Problem, function: str, dtype) -> dict:
    """The oracle's results for the problem's (batched) values, computed in `dtype`, by name."""

    def cast(value):
        if value is None or np.asarray(value).dtype.kind != "f":
            return value
        return np.asarray(value).astype(dtype)

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        params, arrays, options = {k: cast(v) for k, v in p.params.items()}, p.arrays, p.options
        inputs, h0, activation = cast(arrays["inputs"]), cast(arrays["h0"]), options["activation"]
        layer = {
            "activation": activation,
            "lengths": arrays["lengths"],
            "reverse": options["reverse"],
        }
        if function == "loss_and_grad":
            result = reference.loss_and_grad(
                params,
                inputs,
                cast(arrays["targets"]),
                h0=h0,
                activation=activation,
                reduction=options["reduction"],
            )
        elif function == "forward":
            result = reference.forward(params, inputs, h0=h0, activation=activation)
        elif function == "layer_forward":
            result = reference.layer_forward(params, inputs, h0=h0, **layer)
        elif function == "layer_backward":
            hidden = reference.layer_forward(params, inputs, h0=h0, **layer).hidden
            result = reference.layer_backward(
                params,
                inputs,
                hidden,
                h0=h0,
                d_hidden=cast(arrays["d_hidden"]),
                d_h_last=cast(arrays["d_h_last"]),
                **layer,
            )
        elif function == "head_logits":
            result = reference.head_logits(params, cast(arrays["hidden"]))
        else:
            result = reference.head_loss_and_grad(
                params,
                cast(arrays["hidden"]),
                cast(arrays["targets"]),
                reduction=options["reduction"],
            )
    return {
        name: np.asarray(value, np.longdouble)
        for name, value in flattened(function, result).items()
    }


def layer_expectations(p: Problem, function: str) -> dict:
    """test_core_vs_oracle's expectations of the layer's results, for this problem."""
    params64 = {k: widened(v) for k, v in p.params.items()}
    inputs64, h0 = widened(p.arrays["inputs"]), widened(p.arrays["h0"])
    options = {"activation": p.options["activation"], "lengths": p.arrays["lengths"],
               "reverse": p.options["reverse"]}  # fmt: skip
    oracle = reference.layer_forward(params64, inputs64, h0=h0, **options)
    if function == "layer_forward":
        return {
            name: (getattr(oracle, name), np.abs(getattr(oracle, name)), p.T)
            for name in ("hidden", "h_last")
        }
    d_hidden, d_h_last = widened(p.arrays["d_hidden"]), widened(p.arrays["d_h_last"])
    grads = reference.layer_backward(
        params64, inputs64, oracle.hidden, h0=h0, d_hidden=d_hidden, d_h_last=d_h_last, **options
    )
    x = oracle_scales.dense_inputs(inputs64, p.D)
    a, _ = oracle_scales.numpy_layer_forward(
        params64, x, h0, options["activation"], options["lengths"], options["reverse"]
    )
    _, da = oracle_scales.numpy_layer_backward(
        params64, x, h0, a, oracle.hidden, options["activation"], d_hidden, d_h_last,
        options["lengths"], options["reverse"],
    )  # fmt: skip
    scales = oracle_scales.layer_gradient_scales(
        params64, x, h0, oracle.hidden, da, d_h_last, options["reverse"]
    )
    return {
        f"grads['{name}']": (grad, scales[name], p.T)
        for name, grad in grads.items()
        if name != "x" or p.options["input_grad"]
    }


def head_expectations(p: Problem, function: str) -> dict:
    """test_core_vs_oracle's expectations of the head's results, for this problem."""
    params64 = {k: widened(v) for k, v in p.params.items()}
    hidden64 = widened(p.arrays["hidden"])
    logits = reference.head_logits(params64, hidden64)
    if function == "head_logits":
        scale = np.abs(params64["c"]) + np.abs(hidden64) @ np.abs(params64["V"]).T
        return {"logits": (logits, scale, p.H - 1)}  # a dot product of H terms
    targets = widened(p.arrays["targets"])
    reduction = p.options["reduction"]
    oracle = reference.head_loss_and_grad(params64, hidden64, targets, reduction=reduction)
    _, scales = oracle_scales.head_scales(params64, hidden64, logits, targets, oracle.loss,
                                          reduction)  # fmt: skip
    return {
        "loss": (oracle.loss, scales["loss"], p.T),
        "grads['V']": (oracle.grads["V"], scales["V"], p.T),
        "grads['c']": (oracle.grads["c"], scales["c"], p.T),
        "d_hidden": (oracle.d_hidden, scales["d_hidden"], p.O - 1),  # a dot product of O terms
    }


def check_memory_plan(call: Call, plan) -> None:
    """What memory_plan documents: a plan within the budget, at least its minimum, that holds
    its stored states; and the plan loss_and_grad follows, to the same bits."""
    kwargs = call.kwargs
    assert isinstance(plan, bptt.MemoryPlan)
    T, B, D, H, O = (int(kwargs[name]) for name in "TBDHO")
    itemsize = np.dtype(kwargs["dtype"]).itemsize
    budget = kwargs.get("memory_budget")
    assert plan.schedule in ("every state kept", "segments", "binomial"), plan.schedule
    if T * B == 0:  # nothing to compute, nothing kept
        assert plan == (0, "every state kept", 0, 0, 0.0, 0), plan
        if T + B <= 10_000 and H * (D + H + O) <= 20_000:  # arrays of a size to draw
            follow_plan(call, plan, (T, B, D, H, O))
        return
    assert plan.stored_states >= 1, plan
    assert 0 <= plan.checkpoints <= plan.stored_states, plan
    assert 0 <= plan.recomputed_steps <= T, plan
    assert plan.minimum_bytes <= plan.bytes, plan
    assert plan.bytes >= plan.stored_states * B * H * itemsize, f"the states do not fit: {plan}"
    if budget is None and plan.schedule == "every state kept":
        assert plan.stored_states == T + 1, plan
    elif budget is None:  # keeping every state does not fit in the memory available
        every_state = bptt.memory_plan(**(kwargs | {"memory_budget": 2**63 - 1}))
        assert plan.bytes < every_state.bytes, (plan, every_state)
    else:
        assert plan.bytes <= bptt.memory_budget.parse_memory_budget(budget), plan
    if T * B * (D + H + O) <= 20_000:
        follow_plan(call, plan, (T, B, D, H, O))


def follow_plan(call: Call, plan, sizes) -> None:
    """loss_and_grad under the plan's budget: refused below the minimum, else the same bits as
    without a budget."""
    T, B, D, H, O = sizes
    kwargs = call.kwargs
    dtype = np.dtype(kwargs["dtype"]).type
    rng = np.random.default_rng(T * B + D)
    params = bptt.init_params(D, H, O, dtype=dtype, seed=0)
    inputs = (
        rng.integers(0, D, (T, B))
        if kwargs["tokens"]
        else (rng.standard_normal((T, B, D)).astype(dtype))
    )
    targets = rng.integers(0, O, (T, B))
    budget = kwargs.get("memory_budget")
    bptt.set_num_threads(call.threads)
    plain = bptt.loss_and_grad(params, inputs, targets)
    budgeted = bptt.loss_and_grad(params, inputs, targets, memory_budget=budget)
    assert plain.loss == budgeted.loss, "loss_and_grad under the plan's budget: another loss"
    for name, grad in plain.grads.items():
        assert grad.tobytes() == budgeted.grads[name].tobytes(), f"{name}: other bits"


def check_init_params(call: Call, params) -> None:
    kwargs = call.kwargs
    D, H, O = (int(kwargs[k]) for k in ("input_size", "hidden_size", "output_size"))
    dtype = np.dtype(kwargs["dtype"])
    assert type(params) is dict
    assert tuple(params) == PARAM_NAMES
    bound = dtype.type(1.0 / np.sqrt(H))
    for name, shape in _model.parameter_shapes(D, H, O).items():
        value = params[name]
        assert value.shape == shape, name
        assert value.dtype == dtype, name
        assert value.flags.c_contiguous, name
        assert value.flags.writeable, name
        assert (np.abs(value) <= bound).all(), f"{name}: beyond ±1/sqrt(H)"
    if kwargs["seed"] is not None:
        again = invoke(call)
        for name, value in params.items():
            assert value.tobytes() == again[name].tobytes(), f"{name}: another draw, same seed"


CHECKS = {
    **dict.fromkeys(ARRAYS, check_array_result),
    "memory_plan": check_memory_plan,
    "init_params": check_init_params,
}


# -- description -------------------------------------------------------------------------------


def describe_value(value) -> str:
    if isinstance(value, np.ndarray):
        flags = "".join(
            letter for letter, flag in (("C", "c_contiguous"), ("A", "aligned"), ("W", "writeable"))
            if getattr(value.flags, flag)
        )  # fmt: skip
        text = f"array{value.shape} {value.dtype.str} strides={value.strides} flags={flags}"
        return text + (f" {value.tolist()}" if value.size <= 12 else "")
    if isinstance(value, memoryview):
        return f"memoryview of {describe_value(np.asarray(value))}"
    if isinstance(value, dict | types.MappingProxyType):
        inner = ", ".join(f"{k!r}: {describe_value(v)}" for k, v in value.items())
        return f"{type(value).__name__}({{{inner}}})"
    if isinstance(value, list):
        return f"list {np.asarray(value, dtype=object).shape}"[:200]
    return repr(value)[:200]


def describe(call: Call) -> str:
    lines = [f"bptt.{call.function} at {call.threads} thread(s)"]
    if call.problem is not None:
        p = call.problem
        lines.append(
            f"  T={p.T} B={p.B} D={p.D} H={p.H} O={p.O} {np.dtype(p.dtype).name}"
            f"{' tokens' if p.tokens else ''}{' soft targets' if p.soft else ''}"
            f"{' unbatched' if p.unbatched else ''}"
        )
    lines += [f"  {name} = {describe_value(value)}" for name, value in call.kwargs.items()]
    lines += [f"  change: {note}" for note in call.verdict.notes]
    return "\n".join(lines)


# -- libFuzzer's entry ---------------------------------------------------------------------------


def test_one_input(data: bytes) -> None:
    fdp = atheris.FuzzedDataProvider(data)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # building the arguments: casts of NaN and the like
        call = draw_call(fdp)
    if fdp.ConsumeIntInRange(0, 15) == 0:
        bptt.release_scratch()  # the next call takes new scratch
    try:
        run_one(call)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{describe(call)}") from None


def main(argv: list[str]) -> None:
    if len(argv) == 3 and argv[1] == "--describe":
        fdp = atheris.FuzzedDataProvider(Path(argv[2]).read_bytes())
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            print(describe(draw_call(fdp)))
        return
    if not any(not argument.startswith("-") for argument in argv[1:]):
        work = Path(os.environ.get("BPTT_FUZZ_WORK_DIR") or tempfile.mkdtemp(prefix="fuzz_api_"))
        print(f"fuzz_api: work directory {work}", file=sys.stderr)
        (work / "corpus").mkdir(exist_ok=True)
        argv = [*argv, str(work / "corpus")]
    if not any(argument.startswith("-max_len=") for argument in argv):
        argv = [*argv, "-max_len=512"]
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
