"""What the demo shows while it runs, and its one use of the clock: the safety stop.

Every stage runs a fixed number of steps; the clock decides nothing about the result. `SafetyStop` only ends a
training stage early once the whole run has passed its deadline (a machine far slower than expected), and the report
then says INCOMPLETE in its first line.
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback

console = Console(stderr=True)


def demo_progress() -> Progress:
    """Bars with done/total, the latest numbers, elapsed time and an ETA from the stage's own rate."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
    )


class StepBar(TrainerCallback):
    """A progress bar over optimizer steps showing the latest loss, or reward and success for RL."""

    def __init__(self, progress: Progress, total: int, label: str):
        self.progress, self.task = progress, progress.add_task(label, total=total, info="")

    def on_step_end(self, args, state, control, **kwargs):
        self.progress.update(self.task, completed=state.global_step)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "reward" in logs:
            info = f"reward {logs['reward']:.3f}  success {logs.get('searchgym/success', 0):.2f}"
            self.progress.update(self.task, info=info)
        elif logs and "loss" in logs:
            self.progress.update(self.task, info=f"loss {logs['loss']:.3f}")
        return control


class SafetyStop(TrainerCallback):
    """Stops training once the run's `deadline` (time.monotonic) has passed; `stopped_at` is the step it stopped
    at (None = the stage ran all its steps)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        if time.monotonic() >= self.deadline and state.global_step < state.max_steps:
            control.should_training_stop = True
            self.stopped_at = state.global_step
        return control


def eval_bar(progress: Progress, total: int, label: str) -> Any:
    """An `on_batch` callback for `harness.evaluate` advancing a bar of `total` episodes."""
    task = progress.add_task(label, total=total, info="")
    return lambda n: progress.advance(task, n)
