"""Ctrl-C as a user presses it during a run's steps: in the middle of a chosen one."""

import signal

from bptt.trainer import Trainer


def ctrl_c_during_step(trainer: Trainer, step: int) -> None:
    """Makes SIGINT arrive while `trainer` takes its step number `step` (counted from 1)."""
    take_step = trainer.step

    def step_then_ctrl_c():
        loss = take_step()
        if trainer.step_count == step:
            signal.raise_signal(signal.SIGINT)
        return loss

    trainer.step = step_then_ctrl_c
