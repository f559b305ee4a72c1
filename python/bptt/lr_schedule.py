"""The learning rate of each step of a `bptt train` run: constant, or a linear warm-up followed
by a cosine decay to zero at the end of the run's horizon (its --steps, or its --minutes as
elapsed wall time).

The decay follows the run's progress, the fraction of its horizon done before the step: steps
taken ÷ horizon steps, or seconds elapsed ÷ horizon seconds (the seconds of every invocation of
the run). The warm-up counts steps, so that it is the same whatever the horizon. A checkpoint
records the horizon (`Budget` in run totals): a resumed run keeps its place on the schedule."""

import math

LR_SCHEDULES = ("constant", "cosine")
# Adam's first steps, while its second moments are still being estimated, are the large ones:
# a ramp over the first steps keeps them from throwing the recurrence into saturation (50 did
# as well as 200 in the sweep of README's "Quality in five minutes", and wastes fewer steps)
WARMUP_STEPS = 50


def learning_rate(schedule: str, base_lr: float, steps_done: int, progress: float) -> float:
    """The rate of the step after `steps_done` steps, at `progress` in [0, 1] of the horizon
    (clamped: past the horizon the rate stays at its end)."""
    if schedule == "constant":
        return base_lr
    if schedule != "cosine":
        raise ValueError(f"schedule: expected one of {', '.join(LR_SCHEDULES)}, got {schedule!r}")
    warmup = min(1.0, (steps_done + 1) / WARMUP_STEPS)
    decay = 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return base_lr * warmup * decay
