"""Memory budgets: how much working memory a call of the whole model may take, and what it does
within it (bptt.memory_plan).

A budget is None, an int of bytes, or a string with a unit: "512MiB", "2 GB", "1.5GiB" (IEC
units are powers of 1024, SI units powers of 1000; case-insensitive; "B" or no unit: bytes).
"""

from __future__ import annotations

import numbers
import re
from fractions import Fraction
from typing import TYPE_CHECKING, NamedTuple

from bptt import _arguments, _core
from bptt.errors import shown

if TYPE_CHECKING:
    from numpy.typing import DTypeLike

__all__ = ["MemoryPlan", "memory_plan", "parse_memory_budget"]

_UNITS = {
    "": 1,
    "b": 1,
    **{f"{prefix}b": 1000 ** (power + 1) for power, prefix in enumerate("kmgtpe")},
    **{f"{prefix}ib": 1024 ** (power + 1) for power, prefix in enumerate("kmgtpe")},
}
# The core counts bytes and sizes in signed 64-bit integers: a budget beyond the largest limits
# nothing more (no machine has that much memory), a size beyond it is refused.
_LARGEST = 2**63 - 1
_LARGEST_DIGITS = len(str(_LARGEST))
_FRACTION_DIGITS = 64
# ASCII digits and spaces only: Python's int() would also read other scripts' digits, and \s
# takes line breaks, which a size written on one line never has.
_SIZE = re.compile(r" *([0-9]+(?:\.[0-9]*)?|\.[0-9]+) *([a-z]*) *", re.IGNORECASE | re.ASCII)


def parse_memory_budget(value: object) -> int | None:
    """The budget in bytes, or None; TypeError or ValueError naming memory_budget otherwise."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral | str):
        raise TypeError(
            "memory_budget: expected None, an integer number of bytes or a string with a unit "
            f"such as '512MiB', got {type(value).__name__}"
        )
    if isinstance(value, str):
        match = _SIZE.fullmatch(value)
        unit = match[2].lower() if match else None
        if match is None or unit not in _UNITS:
            raise ValueError(
                "memory_budget: expected a size such as '512MiB', '2 GB' or '1.5GiB' (units B, "
                "kB, MB, GB, TB, PB, EB, KiB, MiB, GiB, TiB, PiB, EiB), got "
                f"{shown(value)}"
            )
        whole, _, fraction = match[1].partition(".")
        whole = whole.lstrip("0")
        if len(whole) > _LARGEST_DIGITS:  # more bytes than any unit of _LARGEST's
            return _LARGEST
        # Exact (a float would overflow to inf) and within Python's limit on the digits of an
        # integer's text: a byte count k of any unit is k / unit, at most 60 decimals (1024**6),
        # which the first _FRACTION_DIGITS decimals never fall below.
        number = Fraction(f"{whole or 0}.{fraction[:_FRACTION_DIGITS]}") * _UNITS[unit]
        if number < 1:
            raise ValueError(f"memory_budget: expected at least 1 byte, got {shown(value)}")
        return min(int(number), _LARGEST)
    if value < 1:
        raise ValueError(f"memory_budget: expected a positive number of bytes, got {value}")
    return min(int(value), _LARGEST)


class MemoryPlan(NamedTuple):
    """What a call of loss_and_grad does with its working memory (everything it allocates
    beyond its arguments and the arrays it returns)."""

    bytes: int  # the working memory it takes at most
    schedule: str  # "every state kept", "segments" or "binomial"
    stored_states: int  # hidden states (B by H each) held at once
    checkpoints: int  # of those, states kept to compute others again from
    recomputed_steps: float  # steps computed again, as a fraction of a forward pass
    minimum_bytes: int  # the smallest budget the problem fits in


def memory_plan(
    T: int,
    B: int,
    D: int,
    H: int,
    O: int,
    *,
    dtype: DTypeLike = "float32",
    tokens: bool = False,
    memory_budget: int | str | None = None,
    compute_dtype: str | None = None,
) -> MemoryPlan:
    """What `loss_and_grad` would do with its working memory for inputs of T steps of B
    sequences (D features, or token ids below D with tokens=True), hidden size H and O
    outputs, at the current thread count: under `memory_budget` it keeps some hidden states
    and computes the others again, for the same results. ValueError names the minimum budget
    when it is below it. None: every state kept when that fits in the memory available now,
    else the plan that fits (MemoryError when none does), as the call would. compute_dtype as
    loss_and_grad takes it. T or B of 0: the call computes and keeps nothing (a plan of 0 bytes
    and 0 stored states)."""
    # No steps or no sequences: a call loss_and_grad takes, which computes nothing.
    T, B, D, H, O = (
        _arguments.integer(value, name, least)
        for name, value, least in (("T", T, 0), ("B", B, 0), ("D", D, 1), ("H", H, 1), ("O", O, 1))
    )
    for name, size in zip("TBDHO", (T, B, D, H, O), strict=True):
        if size > _LARGEST:
            raise ValueError(f"{name}: expected an integer <= 2**63 - 1, got {size!r}")
    dtype_name = _arguments.float_dtype(dtype).name
    plan = _core.memory_plan(
        T, B, D, H, O, dtype_name, _arguments.flag(tokens, "tokens"),
        parse_memory_budget(memory_budget), compute_dtype,
    )  # fmt: skip
    return MemoryPlan(**plan)


def minimum_budget(T: int, B: int, D: int, H: int, O: int, **options) -> int:
    """The least memory_budget a call of this problem takes (memory_plan's options), whatever
    the memory available: the minimum_bytes of a plan under a budget any plan fits."""
    return memory_plan(T, B, D, H, O, memory_budget=_LARGEST, **options).minimum_bytes
