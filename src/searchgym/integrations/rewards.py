"""Reward functions for other trainers' loops, scored with the env's own answer scores (`searchgym.env.rewards`).

- `compute_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs)`: the custom reward file of verl
  (`reward.custom_reward_function.path=<this file>`) in the Search-R1 / verl signature. It reads the last answer of the
  response, in the tag form `<answer> … </answer>` or the JSON form (an `answer` tool call), and returns
  `{"score", "em", "f1", "cover_em", "answered"}`; `score` is the env's reward metric (`metric`, default the env's
  `EnvConfig.reward`). verl's naive reward manager passes the response alone (special tokens skipped).
- `answer_reward(completions, answers, **kwargs)`: a TRL reward function over the final answers of TRL's own tool
  loop (conversational completions: the last `answer` tool call, else the last assistant text).

Both read the answer with `extract_answer` and score it with `score_answer`: one implementation of each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from searchgym.env.config import EnvConfig
from searchgym.env.jsoncall import CLOSE, OPEN, ToolCallError, extract_tool_call
from searchgym.env.rewards import REWARDS

_ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_TOOL_CALL = re.compile(re.escape(OPEN) + r"(.*?)" + re.escape(CLOSE), re.DOTALL)
DEFAULT_METRIC = EnvConfig().reward


def _answer_call(call: Any) -> str | None:
    """The answer of an `answer` tool call: TRL/OpenAI `{"function": {"name", "arguments"}}` or `{"name", ...}`."""
    if not isinstance(call, dict):
        return None
    call = call.get("function", call) if isinstance(call.get("function"), dict) else call
    if call.get("name") != "answer":
        return None
    args = call.get("arguments", call.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    value = args.get("answer") if isinstance(args, dict) else None
    return value.strip() if isinstance(value, str) else None


def extract_answer(text: str) -> str | None:
    """The last answer in `text`: the last `<answer>…</answer>` or `answer` tool call, whichever comes later."""
    if not isinstance(text, str):
        return None
    found: list[tuple[int, str]] = [(m.start(), m.group(1).strip()) for m in _ANSWER_TAG.finditer(text)]
    for m in _TOOL_CALL.finditer(text):
        try:
            call = extract_tool_call(m.group(0))
        except ToolCallError:
            continue
        answer = _answer_call({"name": call.name, "arguments": call.args})
        if answer is not None:
            found.append((m.start(), answer))
    return max(found)[1] if found else None


def gold_answers(ground_truth: Any) -> list[str]:
    """The gold answers of a row: `{"target": [...]}` (verl / Search-R1 parquet; numpy arrays after pandas), a list
    or one string."""
    if isinstance(ground_truth, dict):
        ground_truth = ground_truth.get("target", ground_truth.get("answers", []))
    if isinstance(ground_truth, str):
        return [ground_truth]
    if hasattr(ground_truth, "tolist"):
        ground_truth = ground_truth.tolist()
    return [str(g) for g in ground_truth]


def score_answer(answer: str | None, golds: Sequence[str], metric: str = DEFAULT_METRIC) -> dict[str, float]:
    """Every env score of `answer` (0 without one), and `score` = the chosen metric."""
    if metric not in REWARDS:
        raise ValueError(f"unknown reward metric {metric!r}; choose one of {list(REWARDS)}")
    scores = {name: fn(answer, golds) if answer is not None else 0.0 for name, fn in REWARDS.items()}
    return {"score": scores[metric], **scores, "answered": float(answer is not None)}


def compute_score(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    metric: str = DEFAULT_METRIC,
    **kwargs: Any,
) -> dict[str, float]:
    """verl custom reward function (also the Search-R1 signature); `metric` can be set through verl's
    `reward.custom_reward_function.reward_kwargs`."""
    return score_answer(extract_answer(solution_str), gold_answers(ground_truth), metric)


def _final_answer(completion: Any) -> str | None:
    """The answer of one TRL completion: text, or a list of messages (assistant / tool / assistant …)."""
    if isinstance(completion, str):
        return extract_answer(completion)
    for message in reversed(list(completion)):
        if message.get("role") != "assistant":
            continue
        for call in reversed(message.get("tool_calls") or []):
            answer = _answer_call(call)
            if answer is not None:
                return answer
        answer = extract_answer(message.get("content") or "")
        if answer is not None:
            return answer
    return None


def answer_reward(
    completions: Sequence[Any], answers: Sequence[Sequence[str]], metric: str = DEFAULT_METRIC, **kwargs: Any
) -> list[float]:
    """TRL reward function: the env score of each completion's final answer against the row's `answers` column."""
    return [
        score_answer(_final_answer(c), list(golds), metric)["score"]
        for c, golds in zip(completions, answers, strict=True)
    ]
