"""SearchGym-RL curriculum inside TRL: TRL's train dataset streams the curriculum's draws (trainer/data.py), the
rollout reports each rollout's success, and this callback feeds the success rate to the curriculum after each
optimizer step (promotion) and saves its state into every checkpoint, so a resumed run continues in the same stage
with the same task draws.

Draw j is a function of (seed, the stage draw j was made in, j) and the state records the stage of every draw made
so far. That matters because accelerate's data loader fetches one batch ahead: at a checkpoint after step k the
draw for step k + 1 is already made, and after a resume the stream makes it again, in its recorded stage, so it is
identical. Every process streams every draw (and keeps its slice) and promotes on the gathered successes, so
processes never disagree about the curriculum.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from searchgym.io import write_json
from searchgym.tasks.curriculum import Curriculum

STATE_FILE = "searchgym_curriculum.json"


class CurriculumTracker:
    """The curriculum plus the rollout outcomes not yet reported to it."""

    def __init__(self, curriculum: Curriculum):
        self.curriculum = curriculum
        self.pending: list[bool] = []  # success of each rollout since the last update
        self.promotions: list[int] = []

    def draw(self, index: int, groups: int) -> list[Any]:
        """Draw number `index`: one task per group of one generation batch (all processes)."""
        return self.curriculum.draw(index, groups)

    def record(self, successes: list[bool]) -> None:
        self.pending += successes

    def update(self, step: int) -> bool:
        if not self.pending:
            return False
        rate = sum(self.pending) / len(self.pending)
        self.pending = []
        promoted = self.curriculum.update(rate, step)
        if promoted:
            self.promotions.append(step)
        return promoted

    def state_dict(self) -> dict[str, Any]:
        return {
            "curriculum": self.curriculum.state_dict(),
            "promotions": self.promotions,
            "pending": self.pending,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.curriculum.load_state_dict(state["curriculum"])
        self.promotions = list(state["promotions"])
        self.pending = [bool(x) for x in state["pending"]]


class CurriculumCallback(TrainerCallback):
    """Promotes at the end of each optimizer step; writes the curriculum state into each checkpoint last,
    which also marks the checkpoint complete (see `grpo.is_complete`)."""

    def __init__(self, tracker: CurriculumTracker):
        self.tracker = tracker

    def on_step_end(self, args, state, control, **kwargs):
        self.tracker.update(state.global_step)
        return control

    def on_save(self, args, state, control, **kwargs):
        ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if ckpt.is_dir() and state.is_world_process_zero:
            write_json(ckpt / STATE_FILE, {"global_step": state.global_step, **self.tracker.state_dict()})
        return control


def load_curriculum_state(checkpoint: Path, tracker: CurriculumTracker) -> None:
    path = Path(checkpoint) / STATE_FILE
    if path.exists():
        tracker.load_state_dict(json.loads(path.read_text()))
