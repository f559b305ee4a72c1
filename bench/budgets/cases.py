"""The two problems measured, their budgets and targets, and the names of the cells timed."""

# ruff: noqa: RUF003  (× and · are the shapes' symbols)

from dataclasses import dataclass

import numpy as np
from comparison.problem import Problem

from problems import problem_arrays

MIB = 2**20


@dataclass(frozen=True)
class Case:
    """A problem measured under memory budgets: (T, B, D, H, O), float32; token-id inputs or
    float ones."""

    name: str
    shape: tuple[int, int, int, int, int]
    tokens: bool

    def states_bytes(self) -> int:
        """The hidden states' bytes, h_0 .. h_T: (T + 1)·B·H·4."""
        T, B, _, H, _ = self.shape
        return (T + 1) * B * H * np.dtype(np.float32).itemsize

    def problem(self) -> Problem:
        return Problem(self.name, self.shape, self.tokens, *problem_arrays(self.shape, self.tokens))

    def title(self) -> str:
        T, B, D, H, O = self.shape
        inputs = f"D={D} ({'token ids' if self.tokens else 'dense'})"
        return f"T={T:,}, B={B}, {inputs}, H={H}, O={O}, float32"


# Size 1: the budgets as shares of the states' bytes, each with bptt beside checkpointed peers.
DENSE = Case("dense", (1000, 32, 128, 256, 128), tokens=False)
# Size 2: a sequence whose states alone (0.8 GB) are a dozen times the budget.
LONG = Case("long", (100_000, 8, 64, 256, 64), tokens=True)
LONG_BUDGET = 64 * MIB
# --quick: the same measurements on problems of milliseconds, for CI's smoke run.
QUICK_DENSE = Case("dense", (400, 4, 16, 32, 16), tokens=False)
QUICK_LONG = Case("long", (2000, 4, 16, 32, 16), tokens=True)
QUICK_LONG_BUDGET = 256 * 2**10

SHARES = (1.0, 0.25, 0.10, 0.05, 0.01)  # and the minimum, memory_plan's minimum_bytes
TARGET_SHARE = 0.10
DENSE_TARGET_RATIO = 1.25  # budgeted ÷ unbudgeted time at TARGET_SHARE; Gruslys et al. 1.33× at 5%
LONG_TARGET_RATIO = 1.5  # budgeted ÷ unbudgeted time on LONG, whose memory must stay in budget


def cases(quick: bool) -> tuple[Case, Case, int]:
    """(size 1, size 2, size 2's budget in bytes)."""
    return (QUICK_DENSE, QUICK_LONG, QUICK_LONG_BUDGET) if quick else (DENSE, LONG, LONG_BUDGET)


def budget_rows(states_bytes: int, minimum_bytes: int, shares=SHARES) -> list[dict]:
    """A row per share of the states' bytes, its budget in bytes and whether it is below the
    smallest budget the problem fits in; then the row of that minimum itself."""
    rows = []
    for share in shares:
        budget = round(share * states_bytes)
        rows.append(
            {
                "label": f"{share:.0%}",
                "share": share,
                "budget_bytes": budget,
                "below_minimum": budget < minimum_bytes,
            }
        )
    rows.append(
        {
            "label": "minimum",
            "share": minimum_bytes / states_bytes,
            "budget_bytes": minimum_bytes,
            "below_minimum": False,
        }
    )
    return rows


def segment_lengths(T: int, quick: bool) -> list[int]:
    """The segment lengths at which the checkpointed peers' memory is measured: the divisors of
    T from 2 to T/2 (a scan of equal segments needs a divisor); one under --quick."""
    if quick:
        return [max(1, T // 4)]
    return [d for d in range(2, T // 2 + 1) if T % d == 0]


def cell_key(impl: str, memory_budget: int | None = None, segment: int | None = None) -> str:
    """A timed cell's name: "bptt", "bptt@<budget bytes>", "torch", "torch/<segment steps>"."""
    if memory_budget is not None:
        return f"{impl}@{memory_budget}"
    if segment is not None:
        return f"{impl}/{segment}"
    return impl
