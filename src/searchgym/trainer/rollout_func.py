"""TRL `rollout_func` running SearchGym's multi-turn rollout with the policy being trained.

TRL hands over this process's prompts of one generation batch (each dataset row repeated `num_generations` times in
a row; with several processes a group may be split between two of them). Every prompt is a real task row's prompt
(trainer/data.py), found in `tasks` by its text. Observation tokens get `env_mask = 0` and never train.

Extra fields returned per rollout (TRL merges them into the inputs; the reward function and TRACGRPOTrainer read
them): env_reward, success (the env's rule, EpisodeSummary.success), task_id, level, stage, equal_group, env_info
(the EpisodeSummary as a dict) and env_steps (every StepInfo as a dict).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from searchgym.config import ConfigError
from searchgym.rollout.episodes import RolloutConfig
from searchgym.trainer.curriculum_cb import CurriculumTracker
from searchgym.types import Task


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
    tasks: dict[str, Task]  # prompt -> task (trainer.data.tasks_by_prompt)
    env_factory: Callable[[], Any]
    tokenizer: Any
    rollout_cfg: RolloutConfig
    generator: str = "hf"  # a GENERATORS name: hf (the policy) | vllm (colocated) | openai (vLLM server)
    server_url: str | None = None  # generator "openai": the vLLM server TRL syncs the policy into
    seed: int = 0
    drop_equal_groups: bool = True
    times: StepTimes = field(default_factory=StepTimes)
    _server: Any = field(default=None, init=False, repr=False)

    def __call__(self, prompts: list[Any], trainer: Any) -> dict[str, list]:
        from searchgym.rollout.adapters import to_trl
        from searchgym.rollout.episodes import rollout

        t0 = time.perf_counter()
        g = trainer.num_generations if trainer.model.training else trainer.num_generations_eval
        tasks = [self._task(p) for p in prompts]
        acc = trainer.accelerator
        step = trainer.state.global_step
        cfg = dataclasses.replace(
            self.rollout_cfg, seed=self.seed * 1_000_003 + step * 1009 + acc.process_index
        )
        model = acc.unwrap_model(trainer.model)
        was_training = model.training
        model.eval()
        try:
            trajs = rollout(tasks, self.env_factory, self._generator(trainer, model), self.tokenizer, cfg)
        finally:
            model.train(was_training)
        out = to_trl(trajs)
        rewards = _gather(acc, [float(t.reward) for t in trajs], float)
        # the env's one success rule (unshaped, ungated answer score), so shaping terms never count as success
        success = [t.episode is not None and t.episode.success for t in trajs]
        self.tracker.record(_gather(acc, success, bool))
        # groups of the whole generation batch (they may span processes); this process holds rows [lo, lo + B)
        lo = acc.process_index * len(trajs)
        equal = {
            i for s in range(0, len(rewards), g) if len(set(rewards[s : s + g])) == 1 for i in range(s, s + g)
        }
        local_equal = [lo + i in equal for i in range(len(trajs))]
        if self.drop_equal_groups:
            # no learning signal: take the group's tokens out of the loss and out of its normaliser
            for i, eq in enumerate(local_equal):
                if eq:
                    out["env_mask"][i] = [0] * len(out["env_mask"][i])
        out["success"] = success
        out["level"] = [t.level for t in tasks]
        out["task_id"] = [t.id for t in tasks]
        out["equal_group"] = local_equal
        out["env_steps"] = [[s.to_dict() for s in t.steps] for t in trajs]
        self._time(trajs, time.perf_counter() - t0)
        return out

    def _task(self, prompt: Any) -> Task:
        try:
            return self.tasks[prompt]
        except (KeyError, TypeError):
            raise ConfigError(
                f"prompt {str(prompt)[:80]!r}… is not the prompt of any task of this run; the train dataset must be "
                "the curriculum stream (trainer.data.CurriculumStream) rendered with the same env config"
            ) from None

    def _generator(self, trainer: Any, model: Any) -> Any:
        from searchgym.rollout.generate import make_generator

        if self.generator == "vllm":  # TRL syncs the policy into its colocated engine before each call
            return make_generator("vllm", llm=trainer.vllm_generation.llm, tokenizer=self.tokenizer)
        if self.generator == "openai":  # TRL syncs the policy into the server before each call (main process)
            if self._server is None:  # one client per run keeps its connections and its log-prob probe
                self._server = make_generator("openai", base_url=self.server_url, tokenizer=self.tokenizer)
            return self._server
        return make_generator(self.generator, model=model, tokenizer=self.tokenizer, batch_size=64)

    def _time(self, trajs: list[Any], seconds: float) -> None:
        t = self.times
        t.rollout += seconds
        t.calls += 1
        for tr in trajs:
            t.model += tr.model_seconds
            t.env += tr.env_seconds
            t.tokens += int(sum(tr.env_mask))


def _gather(accelerator: Any, values: list, kind: type) -> list:
    """Every process's values in process order (all processes promote at the same step and see whole groups)."""
    if accelerator.num_processes == 1:
        return values
    import torch

    t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=accelerator.device)
    return [kind(x) for x in accelerator.gather(t).tolist()]


def env_reward(prompts, completions, env_reward, success, level, stage, equal_group, log_metric=None, **_):
    """TRL reward function: the environment's reward, passed through the rollout's extra fields."""
    if log_metric is not None:
        log_metric("searchgym/success", sum(success) / len(success))
        log_metric("searchgym/stage", float(max(stage)))
        log_metric("searchgym/equal_groups", sum(equal_group) / len(equal_group))
        for lvl in sorted(set(level)):
            idx = [i for i, x in enumerate(level) if x == lvl]
            log_metric(f"searchgym/success_level_{lvl}", sum(success[i] for i in idx) / len(idx))
    return [float(r) for r in env_reward]
