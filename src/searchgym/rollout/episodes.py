"""Multi-turn, batched rollouts with exact token-in/token-out bookkeeping.

Every running episode generates one turn per round; the environment answers with observation text, tokenised once
and appended as observation tokens (mask 0). Model tokens keep their exact generated ids (mask 1) and behaviour
log-probs: decoded model text is only handed to the environment, never re-tokenised. Finished episodes leave the batch.

Tag protocol: the prompt is the env's `reset()` text, tokenised. JSON protocol: the prompt is
`apply_chat_template(env.messages(), tools=env.tools(), add_generation_prompt=True)`; each tool result is rendered
by the same template as a `tool` message and the new text (end of the assistant turn + tool message + generation
prompt) is appended as observation tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.env import SearchEnv
from searchgym.env.records import EpisodeSummary, StepInfo
from searchgym.rollout.generate import Generator, SamplingParams
from searchgym.types import Task


@dataclass
class RolloutConfig(YamlConfig):
    max_new_tokens: int = 512  # per model turn
    max_total_tokens: int = 4096  # completion budget per episode: model + observation tokens [ours]
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.max_total_tokens < 1:
            raise ConfigError("rollout.max_new_tokens and rollout.max_total_tokens must be >= 1")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"rollout.top_p must be in (0, 1], got {self.top_p}")
        if self.temperature < 0:
            raise ConfigError(f"rollout.temperature must be >= 0, got {self.temperature}")


@dataclass
class Trajectory:
    task_id: str
    prompt_ids: list[int]
    completion_ids: list[int] = field(default_factory=list)
    env_mask: list[int] = field(default_factory=list)  # 1 = model token, 0 = observation token
    logprobs: list[float] = field(default_factory=list)  # behaviour log-probs; 0.0 on observation tokens
    reward: float = 0.0  # episode.reward
    turns: list[dict[str, str]] = field(default_factory=list)  # {"action", "observation"} decoded, for logs
    steps: list[StepInfo] = field(default_factory=list)  # the env's info of every step
    episode: EpisodeSummary | None = None  # the env's summary (set once the episode ended)
    model_seconds: float = 0.0  # this batch's generation time, shared equally by its trajectories
    env_seconds: float = 0.0

    def add(self, ids: Sequence[int], logprobs: Sequence[float] | None) -> None:
        self.completion_ids += ids
        self.env_mask += [0 if logprobs is None else 1] * len(ids)
        self.logprobs += [0.0] * len(ids) if logprobs is None else list(logprobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "prompt_ids": self.prompt_ids,
            "completion_ids": self.completion_ids,
            "env_mask": self.env_mask,
            "logprobs": self.logprobs,
            "reward": self.reward,
            "turns": self.turns,
            "steps": [s.to_dict() for s in self.steps],
            "episode": self.episode.to_dict() if self.episode else None,
            "model_seconds": self.model_seconds,
            "env_seconds": self.env_seconds,
        }


class ChatRenderer:
    """Prompt and observation tokens for the JSON protocol, through the tokenizer's own chat template."""

    SENTINEL = "\u2063SEARCHGYM-ASSISTANT\u2063"

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        if not getattr(tokenizer, "chat_template", None):
            raise ConfigError("the JSON protocol needs a tokenizer with a chat template; use protocol=tags")

    def render(self, messages: list[dict[str, str]], tools, generation_prompt: bool) -> str:
        return self.tokenizer.apply_chat_template(
            messages, tools=tools, add_generation_prompt=generation_prompt, tokenize=False
        )

    def prompt(self, env: SearchEnv) -> str:
        return self.render(env.messages(), env.tools(), True)

    def observation(
        self, messages: list[dict[str, str]], tools, observation: str, ended_with_eos: bool
    ) -> str:
        """Text that closes the assistant turn (unless the model already did with eos), then the tool message
        and the generation prompt. Found by rendering with a sentinel as the assistant content."""
        before = messages + [{"role": "assistant", "content": self.SENTINEL}]
        base = self.render(before, tools, False)
        full = self.render(before + [{"role": "tool", "content": observation}], tools, True)
        if not full.startswith(base) or self.SENTINEL not in base:
            raise ConfigError(
                "this chat template rewrites earlier turns when a tool message is added, so exact token "
                "bookkeeping is impossible; use a template that only appends"
            )
        close = base[base.rindex(self.SENTINEL) + len(self.SENTINEL) :]
        eos = self.tokenizer.eos_token or ""
        if ended_with_eos and eos and close.startswith(eos):
            close = close[len(eos) :]
        return close + full[len(base) :]


def rollout(
    tasks: Sequence[Task],
    env_factory: Callable[[], SearchEnv],
    generator: Generator,
    tokenizer,
    cfg: RolloutConfig | None = None,
) -> list[Trajectory]:
    """Run one episode per task (repeat a task for several samples) and return their trajectories in order."""
    cfg = cfg or RolloutConfig()
    envs = [env_factory() for _ in tasks]
    protocol = envs[0].cfg.protocol if envs else "tags"
    chat = ChatRenderer(tokenizer) if protocol == "json" else None
    trajs: list[Trajectory] = []
    messages: list[list[dict[str, str]]] = []
    t_env = time.perf_counter()
    for env, task in zip(envs, tasks, strict=True):
        text = env.reset(task)
        if chat is not None:
            text = chat.prompt(env)
            messages.append(env.messages())
        ids = tokenizer(text, add_special_tokens=chat is None)["input_ids"]
        trajs.append(Trajectory(task_id=task.id, prompt_ids=list(ids)))
    env_seconds = time.perf_counter() - t_env
    model_seconds = 0.0
    stop = tuple(envs[0].stop_strings()) if envs else ()
    active = list(range(len(tasks)))
    turn = 0
    limit = generator.max_context
    while active:
        budgets = []
        for i in list(active):
            budget = min(cfg.max_new_tokens, cfg.max_total_tokens - len(trajs[i].completion_ids))
            if limit is not None:
                budget = min(budget, limit - len(trajs[i].prompt_ids) - len(trajs[i].completion_ids))
                if budget <= 0:  # the served model cannot take one more token: end it as the budget does
                    envs[i].truncate("context_limit")
                    active.remove(i)
                    continue
            budgets.append(budget)
        if not active:
            break
        params = SamplingParams(cfg.max_new_tokens, cfg.temperature, cfg.top_p, stop, cfg.seed + 7919 * turn)
        m0 = generator.model_seconds
        t0 = time.perf_counter()
        gens = generator.generate(
            [trajs[i].prompt_ids + trajs[i].completion_ids for i in active], params, budgets
        )
        gen_wall = time.perf_counter() - t0
        model_seconds += generator.model_seconds - m0
        env_seconds += gen_wall - (generator.model_seconds - m0)  # stop checks, padding, decoding
        t0 = time.perf_counter()
        texts = [tokenizer.decode(g.token_ids, skip_special_tokens=True) for g in gens]
        results = SearchEnv.step_batch([envs[i] for i in active], texts)
        still = []
        for i, g, text, step in zip(active, gens, texts, results, strict=True):
            tr = trajs[i]
            tr.add(g.token_ids, g.logprobs)
            tr.turns.append({"action": text, "observation": step.observation})
            if step.done:
                continue
            obs = step.observation
            if chat is not None:
                obs = chat.observation(
                    messages[i], envs[i].tools(), step.observation, g.finish_reason == "eos"
                )
                messages[i] += [
                    {"role": "assistant", "content": text},
                    {"role": "tool", "content": step.observation},
                ]
            obs_ids = tokenizer(obs, add_special_tokens=False)["input_ids"]
            if len(tr.completion_ids) + len(obs_ids) >= cfg.max_total_tokens:
                envs[i].truncate("token_budget")  # the env's own ending: same summary, shaping and gate
                continue
            if limit is not None and len(tr.prompt_ids) + len(tr.completion_ids) + len(obs_ids) >= limit:
                envs[i].truncate("context_limit")
                continue
            tr.add(obs_ids, None)
            still.append(i)
        env_seconds += time.perf_counter() - t0
        active = still
        turn += 1
    n = max(len(trajs), 1)
    for env, tr in zip(envs, trajs, strict=True):
        tr.steps, tr.episode = env.steps, env.summary
        tr.reward = env.summary.reward if env.summary is not None else 0.0
        tr.model_seconds, tr.env_seconds = model_seconds / n, env_seconds / n
    return trajs
