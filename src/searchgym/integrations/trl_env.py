"""SearchGym for TRL's own tool-calling loop: `GRPOTrainer(environment_factory=...)`.

TRL turns the public methods of the environment class (typed, with Google-style docstrings) into JSON tools for a
chat model, calls `reset(**row)` with each dataset row before generation, and scores each finished rollout with
`get_reward()`. The tool methods are generated from the env's tool registry (`searchgym.env.tools.TOOLS`) for the
active tools of the config, so they are exactly the tools, schemas and checks of the rollout_func path.

    factory = environment_factory("runs/demo/world")
    data = trl_dataset(tasks)                   # prompt (chat messages) + task (JSON) + answers per row
    GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=data, environment_factory=factory)

Each tool call is a typed `Action` stepped through the real `SearchEnv` (nothing is serialised to text and parsed
back), so the reward, the format gate and the turn limit are those of the rollout_func path.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.prompts import tool_loop_messages
from searchgym.env.records import Action
from searchgym.env.tools import DEFAULT_TOOLS, Tool, active
from searchgym.types import Task

ENDED = "The episode has ended; no further tool calls are run."
ANSWERED = "Answer recorded."


def call_tool(env: SearchEnv, name: str, args: dict[str, Any]) -> tuple[str, float | None]:
    """One typed tool call stepped through the env, for the trainers' own tool loops (TRL, verl's tool agent):
    the text the model sees, and the episode reward once the call ended the episode (else None)."""
    if env.done:
        return ENDED, None
    step = env.step(Action(name, args))
    if step.done:
        return (ANSWERED if step.terminated else ENDED), float(step.reward)
    return step.observation, None


class ToolEnv:
    """One SearchGym episode exposed as tools; the tool methods are added per tool set by `env_class`."""

    def __init__(self, engine: Any, env_cfg: EnvConfig):
        self._env = SearchEnv(engine, env_cfg)
        self._reward = 0.0

    def reset(self, task: str | dict | None = None, **_: Any) -> None:
        """Start the episode of the dataset row's task (a Task dict or its JSON)."""
        if task is None:
            raise ValueError(
                "each dataset row needs a 'task' column; build the dataset with trl_dataset(tasks)"
            )
        self._env.reset(Task.from_dict(json.loads(task) if isinstance(task, str) else task))
        self._reward = 0.0
        return None

    def get_reward(self) -> float:
        """The environment's reward for the episode (0 until it ends)."""
        return self._reward

    def _call(self, name: str, args: dict[str, Any]) -> str:
        text, reward = call_tool(self._env, name, args)
        if reward is not None:
            self._reward = reward
        return text


def _method(tool: Tool) -> Callable[..., str]:
    """A real function named after the tool, with its signature, type hints and Google-style docstring (what
    transformers' get_json_schema reads); the env checks the arguments, so a bad call is a format error."""
    names = [a.name for a in tool.args]

    def method(self: ToolEnv, *args: Any, **kwargs: Any) -> str:
        if len(args) > len(names):
            raise TypeError(f"{tool.name}() takes at most {len(names)} positional arguments")
        return self._call(tool.name, {**dict(zip(names, args, strict=False)), **kwargs})

    P = inspect.Parameter
    params = [P("self", P.POSITIONAL_OR_KEYWORD)] + [
        P(a.name, P.POSITIONAL_OR_KEYWORD, annotation=a.type, default=P.empty if a.required else a.default)
        for a in tool.args
    ]
    method.__signature__ = inspect.Signature(params, return_annotation=str)  # type: ignore[attr-defined]
    method.__annotations__ = {**{a.name: a.type for a in tool.args}, "return": str}
    method.__name__ = method.__qualname__ = tool.name
    method.__doc__ = tool.docstring()
    return method


@cache
def env_class(tools: tuple[str, ...] = DEFAULT_TOOLS) -> type[ToolEnv]:
    """The environment class with one method per active tool (cached: one class per tool set, as TRL matches the
    reward source by exact type)."""
    methods = {t.name: _method(t) for t in active(tools)}
    return type("SearchGymEnv", (ToolEnv,), {**methods, "__module__": __name__})


SearchGymEnv = env_class(DEFAULT_TOOLS)


def trl_env_config(env: dict[str, Any] | None = None) -> EnvConfig:
    """The env config of TRL's loop: JSON tool calls (TRL parses them), no <think> requirement."""
    return EnvConfig.from_dict({**(env or {}), "protocol": "json", "require_think": False}, where="env")


def environment_factory(world_dir: str | Path, env: dict[str, Any] | None = None) -> Callable[[], ToolEnv]:
    """A zero-argument factory for TRL; the search engine is loaded once and shared by every instance."""
    from searchgym.index.build import load_engine

    engine = load_engine(world_dir)
    cfg = trl_env_config(env)
    cls = env_class(tuple(t.name for t in active(cfg.tools)))
    return lambda: cls(engine, cfg)


def trl_row(task: Task, cfg: EnvConfig) -> dict[str, Any]:
    """One row: the prompt of TRL's tool loop (the chat template lists the tools; env/prompts.py
    `tool_loop_messages`), the `task` (JSON) that `reset` reads, and the `answers` column that
    `searchgym.integrations.rewards.answer_reward` reads (TRL passes every column to reset and the reward functions)."""
    return {
        "prompt": tool_loop_messages(task, cfg),
        "task": json.dumps(task.to_dict(), ensure_ascii=False, sort_keys=True),
        "answers": task.answers,
        "task_id": task.id,
        "type": task.type,
        "level": task.level,
        "split": task.split,
    }


def trl_dataset(tasks: Sequence[Task], env: dict[str, Any] | None = None) -> Any:
    """A `datasets.Dataset` of `trl_row`s (what `searchgym tasks export --format trl` writes as JSON Lines)."""
    from datasets import Dataset

    cfg = trl_env_config(env)
    return Dataset.from_list([trl_row(t, cfg) for t in tasks])
