"""Trajectories in the shapes trainers consume.

`to_trl` is exactly what TRL 1.16's `GRPOTrainer(rollout_func=…)` expects back: required `prompt_ids`,
`completion_ids`, `logprobs` (one float per completion token), plus `env_mask` (popped by the trainer and used as the
tool mask: 1 = model token in the loss) and extra per-sample lists that TRL forwards to reward functions as keyword
arguments (`env_reward`, and `env_info`: each episode's `EpisodeSummary.to_dict()`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from searchgym.rollout.episodes import Trajectory


def to_trl(trajs: Sequence[Trajectory]) -> dict[str, list[Any]]:
    return {
        "prompt_ids": [list(t.prompt_ids) for t in trajs],
        "completion_ids": [list(t.completion_ids) for t in trajs],
        "logprobs": [list(t.logprobs) for t in trajs],
        "env_mask": [list(t.env_mask) for t in trajs],
        "env_reward": [float(t.reward) for t in trajs],
        "env_info": [t.episode.to_dict() if t.episode else {} for t in trajs],
    }


def to_verl(trajs: Sequence[Trajectory]) -> dict[str, list[Any]]:
    """verl's multi-turn naming: the response is everything after the prompt, `response_mask` 1 on model tokens."""
    return {
        "prompt_ids": [list(t.prompt_ids) for t in trajs],
        "response_ids": [list(t.completion_ids) for t in trajs],
        "response_mask": [list(t.env_mask) for t in trajs],
        "rollout_log_probs": [list(t.logprobs) for t in trajs],
        "reward": [float(t.reward) for t in trajs],
    }
