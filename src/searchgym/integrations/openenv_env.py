"""A SearchGym world served as an OpenEnv environment (openenv 0.10).

    app = make_app("runs/demo/world", "runs/demo/world/tasks/demo")   # a FastAPI app (OpenEnv's create_app)
    python -m searchgym.integrations.openenv_env --world DIR --tasks TASKSET --port 8000

A client (e.g. openenv's `GenericEnvClient`) keeps one WebSocket session per episode:
  reset(task_id=... | seed=...)  → the task's prompt, chat messages and tool schemas;
  step({"tool": "search", "args": {"query": ...}}) → one tool call of `searchgym.env.tools.TOOLS`, run by the real
  `SearchEnv` as a typed `Action` (JSON protocol, as in TRL's tool loop), with the observation text, reward, done;
  state() → episode id, step count, task id.
An unknown tool or bad arguments is an invalid turn: its error is the observation text (and `error`), as in every
other SearchGym loop. The reward is 0 until the episode ends, then the episode reward (`SearchEnv`).
"""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from openenv.core.env_server.http_server import create_app
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.records import Action as ToolCall
from searchgym.errors import InputError, SearchGymError
from searchgym.integrations.trl_env import ANSWERED, ENDED, trl_env_config
from searchgym.types import Task

ENV_NAME = "searchgym"


class SearchGymAction(Action):
    tool: str = Field(..., description="The tool to call: search, access, answer (or find when active).")
    args: dict[str, Any] = Field(
        default_factory=dict, description="The tool's arguments, e.g. {'query': ...}."
    )


class SearchGymObservation(Observation):
    text: str = Field(default="", description="The prompt (reset) or the tool's result (step).")
    error: str | None = Field(default=None, description="Why the turn was invalid, if it was.")
    task_id: str | None = Field(default=None)
    messages: list[dict[str, str]] = Field(default_factory=list, description="Reset only: chat messages.")
    tools: list[dict[str, Any]] = Field(default_factory=list, description="Reset only: tool schemas.")


class SearchGymState(State):
    task_id: str | None = None
    done: bool = False


class SearchGymEnvironment(Environment[SearchGymAction, SearchGymObservation, SearchGymState]):
    """One OpenEnv session: episodes of `tasks` over a shared engine, each a fresh `SearchEnv` episode."""

    SUPPORTS_CONCURRENT_SESSIONS = True  # each instance owns its SearchEnv; only the engine is shared

    def __init__(self, engine: Any, tasks: Sequence[Task], cfg: EnvConfig):
        super().__init__()
        if not tasks:
            raise InputError(
                "the task set is empty; build one with `searchgym tasks build WORLD --name NAME`"
            )
        self._tasks = list(tasks)
        self._by_id = {t.id: t for t in self._tasks}
        self._env = SearchEnv(engine, cfg)
        self._next = 0
        self._state = SearchGymState()

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, task_id: str | None = None, **_: Any
    ) -> SearchGymObservation:
        """Start the episode of `task_id`, else of task `seed % n`, else of the next task in file order."""
        task = self._pick(seed, task_id)
        prompt = self._env.reset(task)
        self._state = SearchGymState(episode_id=episode_id or str(uuid.uuid4()), task_id=task.id)
        return SearchGymObservation(
            text=prompt, task_id=task.id, messages=self._env.messages(), tools=self._env.tools(), reward=0.0
        )

    def step(self, action: SearchGymAction, timeout_s: float | None = None, **_: Any) -> SearchGymObservation:
        if self._env.task is None:
            raise RuntimeError("call reset() before step()")
        task_id = self._env.task.id
        if self._env.done:
            return SearchGymObservation(
                text=ENDED, error="the episode is over; call reset()", done=True, reward=0.0, task_id=task_id
            )
        step = self._env.step(ToolCall(action.tool, dict(action.args)))
        self._state.step_count += 1
        self._state.done = step.done
        metadata = {"turn": step.info.turn}
        if step.done:
            summary = self._env.summary
            assert summary is not None
            metadata.update(done_reason=summary.done_reason, scores=summary.scores, success=summary.success)
            text = ANSWERED if step.terminated else ENDED
        else:
            text = step.observation
        return SearchGymObservation(
            text=text,
            error=step.info.error,
            done=step.done,
            reward=float(step.reward),
            task_id=task_id,
            metadata=metadata,
        )

    @property
    def state(self) -> SearchGymState:
        return self._state

    def _pick(self, seed: int | None, task_id: str | None) -> Task:
        if task_id is not None:
            if task_id not in self._by_id:
                raise InputError(f"no task {task_id!r} in the served task set; pick one of its ids")
            return self._by_id[task_id]
        if seed is not None:
            return self._tasks[seed % len(self._tasks)]
        task = self._tasks[self._next % len(self._tasks)]
        self._next += 1
        return task


def make_app(
    world_dir: str | Path, tasks: str | Path, env: dict[str, Any] | None = None, max_sessions: int = 16
) -> FastAPI:
    """The OpenEnv server app for `world_dir`'s index and a task set (its directory or tasks.jsonl).

    `env` overrides the env config (protocol is JSON: the client sends typed tool calls); `max_sessions` is the
    number of concurrent WebSocket sessions (they share one engine, one search at a time)."""
    from searchgym.index.base import LockedEngine
    from searchgym.index.build import load_engine
    from searchgym.tasks.store import load_tasks

    engine = LockedEngine(load_engine(world_dir))
    task_list = load_tasks(tasks)
    cfg = trl_env_config(env)
    return create_app(
        lambda: SearchGymEnvironment(engine, task_list, cfg),
        SearchGymAction,
        SearchGymObservation,
        env_name=ENV_NAME,
        max_concurrent_envs=max_sessions,
        state_cls=SearchGymState,
    )


def main(argv: Sequence[str] | None = None) -> None:
    import uvicorn

    p = argparse.ArgumentParser(description="Serve a SearchGym world as an OpenEnv environment.")
    p.add_argument("--world", required=True, help="the world directory (with its index)")
    p.add_argument("--tasks", required=True, help="a task set directory or its tasks.jsonl")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-sessions", type=int, default=16, help="concurrent WebSocket sessions")
    a = p.parse_args(argv)
    try:
        app = make_app(a.world, a.tasks, max_sessions=a.max_sessions)
    except (SearchGymError, OSError) as e:
        p.exit(2, f"error: {e}\n")
    uvicorn.run(app, host=a.host, port=a.port)


if __name__ == "__main__":
    main()
