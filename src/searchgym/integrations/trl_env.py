"""SearchGym for TRL's own tool-calling loop: `GRPOTrainer(environment_factory=...)`.

TRL turns the public methods `search`, `access` and `answer` (typed, with docstrings) into JSON tools for a chat
model, calls `reset(**row)` with each dataset row before generation, and scores each finished rollout with
`get_reward()`. Nothing else of SearchGym is involved: no rollout_func, no curriculum.

    factory = environment_factory("runs/demo/world")
    data = trl_dataset(tasks)                   # prompt (chat messages) + task (JSON) per row
    GRPOTrainer(model=..., args=GRPOConfig(...), train_dataset=data, environment_factory=factory)

Each tool call is run through the real `SearchEnv` (JSON protocol), so the reward, the format gate and the
turn limit are exactly those of the rollout_func path.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from searchgym.types import Task

QUESTION_PROMPT = "Answer the question by searching the encyclopedia with the tools. Question: {question}"
ENDED = "The episode has ended; no further tool calls are run."


class SearchGymEnv:
    """One SearchGym episode exposed as tools. Construct through `environment_factory`."""

    def __init__(self, engine: Any, env_cfg: Any):
        from searchgym.env.env import SearchEnv

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

    def search(self, query: str) -> str:
        """Search the encyclopedia.

        Args:
            query: Keywords to search for, e.g. a name and a relation.

        Returns:
            The top articles: URL, title and the beginning of the text.
        """
        return self._call("search", {"query": query})

    def access(self, url: str, page: int = 1) -> str:
        """Open an article from the search results.

        Args:
            url: The article's URL as shown in the search results.
            page: Which part of a long article to read, from 1.

        Returns:
            The text of that part of the article.
        """
        return self._call("access", {"url": url, "page": page})

    def answer(self, answer: str) -> str:
        """Give the final answer; this ends the episode.

        Args:
            answer: Just the name, place, date or number that answers the question.

        Returns:
            A confirmation that the answer was recorded.
        """
        self._call("answer", {"answer": answer})
        return "Answer recorded."

    def get_reward(self) -> float:
        """The environment's reward for the episode (0 until an answer is given)."""
        return self._reward

    def _call(self, name: str, arguments: dict[str, Any]) -> str:
        if self._env.done:
            return ENDED
        call = json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False)
        obs, reward, done, _ = self._env.step(f"<tool_call>{call}</tool_call>")
        if done:
            self._reward = float(reward)
            return obs or ENDED
        return obs


def environment_factory(
    world_dir: str | Path, env: dict[str, Any] | None = None
) -> Callable[[], SearchGymEnv]:
    """A zero-argument factory for TRL; the search engine is loaded once and shared by every instance."""
    from searchgym.env.env import EnvConfig
    from searchgym.index.build import load_engine

    engine = load_engine(world_dir)
    cfg = EnvConfig.from_dict({**(env or {}), "protocol": "json", "require_think": False}, where="env")
    return lambda: SearchGymEnv(engine, cfg)


def trl_dataset(tasks: list[Task], prompt: str = QUESTION_PROMPT) -> Any:
    """A `datasets.Dataset` with a conversational `prompt` and the `task` (JSON) that `reset` reads."""
    from datasets import Dataset

    return Dataset.from_dict(
        {
            "prompt": [[{"role": "user", "content": prompt.format(question=t.question)}] for t in tasks],
            "task": [json.dumps(t.to_dict(), ensure_ascii=False) for t in tasks],
        }
    )
