"""Trajectories in the shapes trainers consume.

`to_trl` is exactly what TRL 1.16's `GRPOTrainer(rollout_func=…)` expects back: required `prompt_ids`,
`completion_ids`, `logprobs` (one float per completion token), plus `env_mask` (popped by the trainer and used as the
tool mask: 1 = model token in the loss) and extra per-sample lists that TRL forwards to reward functions as keyword
arguments (`env_reward`, and `env_info`: each episode's `EpisodeSummary.to_dict()`).

`to_verl` is what verl 0.9.1's agent loop returns per sample (the fields of `AgentLoopOutput`); the SearchGym agent
loop (`searchgym.integrations.verl`) builds its outputs with it.
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


# EpisodeSummary fields every verl sample reports in extra_fields (verl makes each key a batch column)
VERL_SIGNALS = (
    "outcome",
    "format_ok",
    "turns",
    "searches",
    "accesses",
    "invalid_turns",
    "format_errors",
    "surfaced_recall",
    "opened_recall",
    "evidence_recall",
)


def to_verl(trajs: Sequence[Trajectory], logprobs: bool = True) -> list[dict[str, Any]]:
    """One dict per trajectory with the fields of verl 0.9.1's `AgentLoopOutput` (`AgentLoopOutput(**d)`): the
    response is everything after the prompt, `response_mask` 1 on model tokens, `response_logprobs` (None when the
    generation server returned none), `reward_score` = the episode reward, `metrics` (model / env seconds) and the
    episode's process signals in `extra_fields` (the same keys for every sample)."""
    out = []
    for t in trajs:
        ep = t.episode
        signals = {k: float(getattr(ep, k)) if ep else 0.0 for k in VERL_SIGNALS}
        extra = {
            "task_id": t.task_id,
            "success": float(ep.success) if ep else 0.0,
            "done_reason": ep.done_reason if ep else "",
            **signals,
        }
        out.append(
            {
                "prompt_ids": list(t.prompt_ids),
                "response_ids": list(t.completion_ids),
                "response_mask": list(t.env_mask),
                "response_logprobs": list(t.logprobs) if logprobs else None,
                "reward_score": float(t.reward),
                "num_turns": 2 * len(t.steps),  # the prompt, every model turn, every observation but the last
                "metrics": {"generate_sequences": t.model_seconds, "tool_calls": t.env_seconds},
                "extra_fields": extra,
            }
        )
    return out
