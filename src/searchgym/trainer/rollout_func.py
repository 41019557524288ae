"""TRL `rollout_func` running SearchGym's multi-turn rollout with the policy being trained.

TRL hands over the prompts of one generation batch, each repeated `num_generations` times in a row. Dataset rows
are placeholders ("slot 17"): the curriculum decides which task each group plays, so a promotion changes the
data without rebuilding the dataset. Observation tokens get `env_mask = 0` and never train.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from searchgym.trainer.curriculum_cb import CurriculumTracker

SLOT_PREFIX = "slot "


def slot_prompts(n: int) -> list[str]:
    return [f"{SLOT_PREFIX}{i}" for i in range(n)]


@dataclass
class StepTimes:
    """Seconds spent per phase, for bench/bench_train.py."""

    rollout: float = 0.0
    model: float = 0.0  # generation inside the rollout
    env: float = 0.0  # environment (search, access, reward) inside the rollout
    tokens: int = 0  # model-generated tokens
    calls: int = 0


@dataclass
class SearchRolloutFunc:
    tracker: CurriculumTracker
    env_factory: Callable[[], Any]
    tokenizer: Any
    rollout_cfg: Any  # searchgym.rollout.episodes.RolloutConfig
    seed: int = 0
    success_reward: float = 0.5
    drop_equal_groups: bool = True
    times: StepTimes = field(default_factory=StepTimes)

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        from searchgym.rollout.adapters import to_trl
        from searchgym.rollout.episodes import rollout

        t0 = time.perf_counter()
        g = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        if len(prompts) % g:
            raise ValueError(
                f"{len(prompts)} prompts on this process is not a multiple of num_generations={g}"
            )
        acc = trainer.accelerator
        group_tasks = self.tracker.draw(len(prompts) // g, acc.process_index, acc.num_processes)
        tasks = [t for t in group_tasks for _ in range(g)]
        step = trainer.state.global_step
        cfg = _with_seed(self.rollout_cfg, self.seed * 1_000_003 + step * 1009 + acc.process_index)
        model = acc.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        try:
            trajs = rollout(
                tasks, self.env_factory, make_generator(trainer, model, self.tokenizer), self.tokenizer, cfg
            )
        finally:
            model.train(was_training)
        out = to_trl(trajs)
        rewards = [float(t.reward) for t in trajs]
        # success = the unshaped outcome score (F1/EM of the answer), so shaping terms never count as success
        outcomes = [float(t.info.get("episode", {}).get("outcome", t.reward)) for t in trajs]
        success = [o >= self.success_reward for o in outcomes]
        self.tracker.record(_gather_bools(acc, success))
        groups = [list(range(i, i + g)) for i in range(0, len(tasks), g)]
        equal = {i for grp in groups if len({rewards[j] for j in grp}) == 1 for i in grp}
        if self.drop_equal_groups:
            # no learning signal: take the group's tokens out of the loss and out of its normaliser
            for i in equal:
                out["env_mask"][i] = [0] * len(out["env_mask"][i])
        out["success"] = success
        out["level"] = [t.level for t in tasks]
        out["task_id"] = [t.id for t in tasks]
        out["stage"] = [self.tracker.curriculum.stage + 1] * len(tasks)
        out["equal_group"] = [i in equal for i in range(len(tasks))]
        self._time(trajs, time.perf_counter() - t0)
        return out

    def _time(self, trajs: list[Any], seconds: float) -> None:
        t = self.times
        t.rollout += seconds
        t.calls += 1
        for tr in trajs:
            info = getattr(tr, "info", {}) or {}
            t.model += float(info.get("model_seconds", 0.0))
            t.env += float(info.get("env_seconds", 0.0))
            t.tokens += int(sum(tr.env_mask))


def _gather_bools(accelerator: Any, values: list[bool]) -> list[bool]:
    """Every process's outcomes, so all processes promote at the same step."""
    if accelerator.num_processes == 1:
        return values
    import torch

    t = torch.tensor(values, dtype=torch.int64, device=accelerator.device)
    return [bool(x) for x in accelerator.gather(t).tolist()]


def make_generator(trainer: Any, model: Any, tokenizer: Any) -> Any:
    """The trainer's own model through transformers, or TRL's colocated vLLM engine when `use_vllm`."""
    if getattr(trainer, "use_vllm", False):
        from searchgym.rollout.vllm import VLLMColocateGenerator

        return VLLMColocateGenerator(trainer.vllm_generation.llm, tokenizer)
    from searchgym.rollout.hf import HFGenerator

    return HFGenerator(model, tokenizer, batch_size=64)


def _with_seed(cfg: Any, seed: int) -> Any:
    import dataclasses

    return dataclasses.replace(cfg, seed=seed) if hasattr(cfg, "seed") else cfg


def env_reward(prompts, completions, env_reward, success, level, stage, equal_group, log_metric=None, **_):
    """TRL reward function: the environment's reward, passed through the rollout's extra fields."""
    if log_metric is not None:
        log_metric("searchgym/success", sum(success) / len(success))
        log_metric("searchgym/stage", float(stage[0]))
        log_metric("searchgym/equal_groups", sum(equal_group) / len(equal_group))
        for lvl in sorted(set(level)):
            idx = [i for i, x in enumerate(level) if x == lvl]
            log_metric(f"searchgym/success_level_{lvl}", sum(success[i] for i in idx) / len(idx))
    return [float(r) for r in env_reward]
