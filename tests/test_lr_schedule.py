"""The learning-rate schedules of `bptt train` (bptt.lr_schedule): constant, or WARMUP_STEPS
steps of linear warm-up times a cosine decay from the rate to 0 over the run's horizon; and
where a run's horizon comes from (its budget, kept by a resume that gives none)."""

import itertools
import math

import pytest

from bptt import training
from bptt.lr_schedule import WARMUP_STEPS, learning_rate
from bptt.training_config import Budget

LR = 0.004
# each value is a few operations on doubles: a few ulps
EXACT = 1e-15


@pytest.mark.parametrize(("steps_done", "progress"), [(0, 0.0), (10, 0.3), (10**6, 1.0)])
def test_the_constant_schedule_is_the_rate_at_every_step(steps_done, progress):
    assert learning_rate("constant", LR, steps_done, progress) == LR


@pytest.mark.parametrize(
    ("steps_done", "progress", "expected"),
    [
        (0, 0.0, LR / WARMUP_STEPS),  # the first step: one warm-up step's share
        (WARMUP_STEPS // 2 - 1, 0.0, LR / 2),  # half-way up the ramp
        (WARMUP_STEPS - 1, 0.0, LR),  # the ramp's top
        (WARMUP_STEPS, 0.5, LR / 2),  # cos(π/2): half the rate at half the horizon
        (WARMUP_STEPS, 0.25, LR * (1 + math.sqrt(0.5)) / 2),
        (WARMUP_STEPS, 1.0, 0.0),  # the horizon: no rate left
        (WARMUP_STEPS, 1.7, 0.0),  # past it, the end's rate
        (WARMUP_STEPS // 2 - 1, 0.5, LR / 4),  # ramp and decay multiply
    ],
)
def test_the_cosine_schedule_at_given_steps(steps_done, progress, expected):
    assert learning_rate("cosine", LR, steps_done, progress) == pytest.approx(
        expected, rel=EXACT, abs=EXACT * LR
    )


def test_the_cosine_schedule_decreases_after_the_warm_up():
    rates = [learning_rate("cosine", LR, WARMUP_STEPS + k, k / 100) for k in range(101)]
    assert all(later <= earlier for earlier, later in itertools.pairwise(rates))
    assert rates[0] == LR


def test_an_unknown_schedule_is_refused_by_name():
    with pytest.raises(ValueError, match="schedule: expected one of constant, cosine, got 'step'"):
        learning_rate("step", LR, 0, 0.0)


def test_a_horizon_of_minutes_counts_the_minutes_before_a_resume():
    assert training._horizon(Budget(minutes=2.0), elapsed_seconds=90.0) == Budget(minutes=3.5)
    assert training._horizon(Budget(steps=500), elapsed_seconds=90.0) == Budget(steps=500)
