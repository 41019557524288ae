"""Run a model as an agent on a task set and score it.

`evaluate` rolls out every task `samples` times (batched), and returns one record per episode: the trajectory plus
the task's type / hops / level and the episode summary of the env (EM, F1, cover-EM, format, actions, evidence
recall). `summarize` turns records into the report's numbers; pass@k uses the unbiased estimator
1 - C(n-c, k) / C(n, k) over the n samples of a task with c correct ones (correct = the env's success rule,
`EpisodeSummary.success`: `env.success_metric` of the answer >= `env.success_threshold`, EM 1 by default).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.index.base import SearchEngine
from searchgym.io import read_jsonl
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.generate import Generator
from searchgym.types import Task

SCORES = ("reward", "em", "f1", "cover_em")
ACTIONS = ("turns", "searches", "accesses")


@dataclass
class EvalConfig(YamlConfig):
    split: str = "test"  # "" = every split of the task set
    limit: int = 0  # evaluate the first `limit` tasks of the split (0 = all)
    samples: int = 1  # rollouts per task; pass@k is reported for every k up to this
    batch_size: int = 16  # episodes generated together
    env: EnvConfig = field(default_factory=EnvConfig)
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(temperature=0.0))

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch_size < 1:
            raise ConfigError("eval.samples and eval.batch_size must be >= 1")
        if self.samples > 1 and self.rollout.temperature == 0:
            raise ConfigError("samples > 1 with greedy decoding repeats one answer; set a temperature > 0")


def select(tasks: Sequence[Task], split: str, limit: int) -> list[Task]:
    chosen = [t for t in tasks if not split or t.split == split]
    if not chosen:
        splits = sorted({t.split for t in tasks})
        raise ConfigError(f"no task in split {split!r}; the task set has splits {splits}")
    return chosen[:limit] if limit > 0 else chosen


def load_qa_jsonl(path: str | Path) -> list[Task]:
    """Questions in the Search-R1 format: {"id"?, "question", "golden_answers": [...]} per line."""
    tasks = []
    for n, row in enumerate(read_jsonl(Path(path)), 1):
        golds = row.get("golden_answers") if isinstance(row, dict) else None
        if not isinstance(golds, list) or not golds or not isinstance(row.get("question"), str):
            raise ValueError(f'{path}:{n}: expected {{"question": "...", "golden_answers": ["...", ...]}}')
        golds = [str(g) for g in golds]
        source = str(row.get("data_source", "external"))
        tasks.append(
            Task(str(row.get("id", n)), row["question"], golds[0], tuple(golds[1:]), source, 0, 0, "test", ())
        )
    return tasks


def evaluate(
    tasks: Sequence[Task],
    engine: SearchEngine,
    generator: Generator,
    tokenizer,
    cfg: EvalConfig,
    on_batch: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """One record per (task, sample), in task order then sample order."""
    episodes = [(t, s) for t in tasks for s in range(cfg.samples)]
    records: list[dict[str, Any]] = []
    for start in range(0, len(episodes), cfg.batch_size):
        chunk = episodes[start : start + cfg.batch_size]
        rcfg = RolloutConfig.from_dict({**cfg.rollout.to_dict(), "seed": cfg.rollout.seed + start})
        trajs = rollout([t for t, _ in chunk], lambda: SearchEnv(engine, cfg.env), generator, tokenizer, rcfg)
        for (task, sample), tr in zip(chunk, trajs, strict=True):
            ep = tr.episode
            assert ep is not None  # rollout ends every episode
            records.append(
                {
                    "task_id": task.id,
                    "sample": sample,
                    "question": task.question,
                    "gold": task.answers,
                    "type": task.type,
                    "hops": task.hops,
                    "level": task.level,
                    "answer": ep.answer,
                    "done_reason": ep.done_reason,
                    "reward": float(ep.reward),
                    **{k: float(ep.scores[k]) for k in SCORES[1:]},
                    **{k: int(getattr(ep, k)) for k in ACTIONS},
                    "success": ep.success,
                    "format_ok": ep.format_ok,
                    "invalid_turns": ep.invalid_turns,
                    "evidence_recall": float(ep.evidence_recall),
                    "has_evidence": bool(task.evidence),
                    "trajectory": tr.to_dict(),
                }
            )
        if on_batch:
            on_batch(len(chunk))
    return records


def pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _scores(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {"n": len(records), **{k: _mean([r[k] for r in records]) for k in SCORES}}


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        by_task[r["task_id"]].append(r)
    n = min(len(v) for v in by_task.values()) if by_task else 0
    passes = {
        f"pass@{k}": _mean(
            [pass_at_k(len(v), sum(bool(r["success"]) for r in v), k) for v in by_task.values()]
        )
        for k in sorted({1, max(n, 1)})
    }
    turns = [r["turns"] for r in records]
    with_evidence = [r["evidence_recall"] for r in records if r["has_evidence"]]
    groups = {
        name: {
            str(key): _scores([r for r in records if r[name] == key])
            for key in sorted({r[name] for r in records})
        }
        for name in ("type", "hops", "level")
    }
    return {
        "episodes": len(records),
        "tasks": len(by_task),
        "samples": n,
        "overall": _scores(records),
        **passes,
        "actions": {k: _mean([r[k] for r in records]) for k in ACTIONS},
        "max_turns_seen": max(turns, default=0),
        "evidence_recall": _mean(with_evidence) if with_evidence else None,
        "invalid_format_rate": _mean([0.0 if r["format_ok"] else 1.0 for r in records]),
        "invalid_turn_rate": sum(r["invalid_turns"] for r in records) / max(sum(turns), 1),
        "answered_rate": _mean([1.0 if r["answer"] is not None else 0.0 for r in records]),
        "done_reasons": dict(sorted(Counter(str(r["done_reason"]) for r in records).items())),
        "by": groups,
    }


def pass_rates(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per task: the share of its samples that were correct (TRAC's teacher pass rate)."""
    by_task: dict[str, list[float]] = defaultdict(list)
    for r in records:
        by_task[r["task_id"]].append(1.0 if r["success"] else 0.0)
    return {t: _mean(v) for t, v in sorted(by_task.items())}
