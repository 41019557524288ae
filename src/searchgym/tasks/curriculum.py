"""SearchGym-RL curriculum: difficulty levels grouped into stages, with promotion on a moving success rate.

Default [ours, after the paper's two stages]: stage 1 = levels 1-2 (named 1-2 hop chains: learn the
search -> access -> answer loop); stage 2 = levels 3+ (longer chains, obfuscation, intersections, comparisons) with
a little replay of stage 1. Promotion when the moving success rate over the last `window` updates reaches
`promote_threshold` (after at least `min_steps` steps in the stage), or unconditionally after
`promote_after_steps` steps in the stage.

Draws are numbered: draw j's tasks are a function of (seed, the stage draw j was made in, j), and the stage of every
draw made so far is part of the state (`draw_stages`), so a draw made again after a resume gives the same tasks.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.types import Task


@dataclass
class StageSpec(YamlConfig):
    name: str = "stage"
    levels: list[int] = field(default_factory=list)
    mix: dict[str, float] = field(
        default_factory=dict
    )  # task type -> weight; empty = as many as the pool has


def _default_stages() -> list[StageSpec]:
    return [
        StageSpec("stage1", [1, 2], {"chain": 1.0}),
        StageSpec(
            "stage2", [3, 4, 5], {"chain": 0.4, "obfuscated": 0.2, "intersection": 0.2, "comparison": 0.2}
        ),
    ]


@dataclass
class CurriculumConfig(YamlConfig):
    seed: int = 0
    split: str = "train"  # the split the curriculum samples from
    stages: list[StageSpec] = field(default_factory=_default_stages)
    replay: float = 0.1  # share of samples drawn from earlier stages after a promotion (against forgetting)
    promote_threshold: float = 0.6  # moving success rate that promotes to the next stage
    window: int = 20  # updates in the moving success rate
    min_steps: int = 20  # steps in a stage before the threshold may promote
    promote_after_steps: int = 0  # promote unconditionally after this many steps in a stage (0 = never)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        if self.window < 1 or self.min_steps < 0 or self.promote_after_steps < 0:
            raise ConfigError(
                f"curriculum: window={self.window} must be >= 1, min_steps={self.min_steps} and "
                f"promote_after_steps={self.promote_after_steps} >= 0"
            )
        if not self.stages:
            raise ConfigError("curriculum.stages: give at least one stage")
        if not 0.0 <= self.replay < 1.0:
            raise ConfigError(f"curriculum.replay={self.replay}: must be in [0, 1)")
        for i, s in enumerate(self.stages):
            if not s.levels:
                raise ConfigError(f"curriculum.stages[{i}] ({s.name}): list the levels it covers")
            if any(w < 0 for w in s.mix.values()):
                raise ConfigError(f"curriculum.stages[{i}].mix: weights must be non-negative")


class Curriculum:
    """Samples tasks for the current stage (deterministic in seed and draw count) and decides promotion."""

    def __init__(self, tasks: list[Task], cfg: CurriculumConfig | None = None):
        self.cfg = cfg or CurriculumConfig()
        self.cfg.validate()
        pool = [t for t in tasks if t.split == self.cfg.split]
        self.pools: list[dict[str, list[Task]]] = []
        for i, s in enumerate(self.cfg.stages):
            by_type: dict[str, list[Task]] = {}
            for t in pool:
                if t.level in s.levels and (not s.mix or s.mix.get(t.type, 0) > 0):
                    by_type.setdefault(t.type, []).append(t)
            if not by_type:
                raise ConfigError(
                    f"curriculum stage {i} ({s.name}, levels {s.levels}) has no {self.cfg.split!r} tasks; "
                    "build a task set with those levels or change the stage"
                )
            self.pools.append(by_type)
        self.stage = 0
        self.stage_start = 0
        self.draw_stages: list[int] = []  # the stage each draw was made in
        self.history: list[float] = []

    @property
    def stage_spec(self) -> StageSpec:
        return self.cfg.stages[self.stage]

    def _pick(self, rng: random.Random, stage: int) -> Task:
        pools, mix = self.pools[stage], self.cfg.stages[stage].mix
        types = sorted(pools)
        weights = [mix.get(t, 1.0) if mix else len(pools[t]) for t in types]
        kind = rng.choices(types, weights)[0]
        return rng.choice(pools[kind])

    @property
    def draws(self) -> int:
        return len(self.draw_stages)

    def sample(self, n: int) -> list[Task]:
        """The next draw: n tasks for the current stage."""
        return self.draw(self.draws, n)

    def draw(self, index: int, n: int) -> list[Task]:
        """Draw number `index` (n tasks): a new draw (index == draws) is made in the current stage; an earlier one is
        made again in the stage it was first made in, so it gives the same tasks."""
        if index > self.draws:
            raise ValueError(f"draw {index} requested but only {self.draws} draws were made; draw in order")
        if index == self.draws:
            self.draw_stages.append(self.stage)
        stage_now = self.draw_stages[index]
        rng = random.Random(f"{self.cfg.seed}/{stage_now}/{index}")
        out = []
        for _ in range(n):
            stage = stage_now
            if stage_now > 0 and rng.random() < self.cfg.replay:
                stage = rng.randrange(stage_now)
            out.append(self._pick(rng, stage))
        return out

    def moving_success(self) -> float:
        recent = self.history[-self.cfg.window :]
        return sum(recent) / len(recent) if recent else 0.0

    def update(self, success_rate: float, step: int) -> bool:
        """Record a batch's success rate at a global step; returns True if this promoted to the next stage."""
        self.history.append(float(success_rate))
        if self.stage + 1 >= len(self.cfg.stages):
            return False
        in_stage = step - self.stage_start
        by_rate = in_stage >= self.cfg.min_steps and len(self.history) >= min(self.cfg.window, in_stage)
        by_rate = by_rate and self.moving_success() >= self.cfg.promote_threshold
        by_time = self.cfg.promote_after_steps > 0 and in_stage >= self.cfg.promote_after_steps
        if not (by_rate or by_time):
            return False
        self.stage += 1
        self.stage_start = step
        self.history = []
        return True

    def state_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "stage_start": self.stage_start,
            "draw_stages": list(self.draw_stages),
            "history": list(self.history),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not 0 <= state["stage"] < len(self.cfg.stages):
            raise ValueError(
                f"curriculum state has stage {state['stage']}; this config has {len(self.cfg.stages)} stages"
            )
        self.stage, self.stage_start = int(state["stage"]), int(state["stage_start"])
        self.draw_stages = [int(x) for x in state["draw_stages"]]
        self.history = [float(x) for x in state["history"]]
