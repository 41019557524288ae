"""TRL's train dataset: real task rows, in the order the curriculum draws them.

`CurriculumStream.dataset()` is a `datasets.IterableDataset` TRL iterates (with `shuffle_dataset=False`): draw j is
one generation batch worth of tasks (one row per group; TRL repeats each row `num_generations` times and gives every
process its contiguous slice). A row holds what a rollout and a reader need:

    prompt    the env's prompt for the task (`render_prompt`; the JSON protocol's user message)
    task_id, question, gold (answer + aliases), level, type
    stage     the curriculum stage (1-based) of the draw, draw  the draw number

TRL hands a rollout_func only the prompts, so the rollout finds each row's task by its prompt (`tasks_by_prompt`,
which refuses a task set where two tasks render the same prompt).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from searchgym.config import ConfigError
from searchgym.env.config import EnvConfig
from searchgym.env.prompts import render_prompt
from searchgym.trainer.curriculum_cb import CurriculumTracker
from searchgym.types import Task


def task_row(task: Task, env_cfg: EnvConfig, stage: int, draw: int) -> dict[str, Any]:
    return {
        "prompt": render_prompt(task, env_cfg),
        "task_id": task.id,
        "question": task.question,
        "gold": task.answers,
        "level": task.level,
        "type": task.type,
        "stage": stage + 1,
        "draw": draw,
    }


def tasks_by_prompt(tasks: Sequence[Task], env_cfg: EnvConfig) -> dict[str, Task]:
    """{prompt: task} for every task; two tasks with the same prompt are refused (the rollout could not tell them
    apart)."""
    out: dict[str, Task] = {}
    for t in tasks:
        p = render_prompt(t, env_cfg)
        if p in out and out[p].id != t.id:
            raise ConfigError(
                f"tasks {out[p].id} and {t.id} have the same question ({t.question!r}); TRL identifies a rollout's "
                "task by its prompt, so remove one of them from the task set"
            )
        out[p] = t
    return out


class CurriculumStream:
    """Endless rows: draw 0, draw 1, ... of the tracker's curriculum, `groups` rows per draw."""

    def __init__(self, tracker: CurriculumTracker, env_cfg: EnvConfig, groups: int):
        if groups < 1:
            raise ValueError(f"a draw needs at least one group, got {groups}")
        self.tracker, self.env_cfg, self.groups = tracker, env_cfg, groups

    def rows(self) -> Iterator[dict[str, Any]]:
        cur = self.tracker.curriculum
        for j in itertools.count():
            tasks = self.tracker.draw(j, self.groups)
            stage = cur.draw_stages[j]
            for task in tasks:
                yield task_row(task, self.env_cfg, stage, j)

    def dataset(self) -> Any:
        from datasets import IterableDataset

        return IterableDataset.from_generator(self.rows)
