"""Run a model as an agent on a task set and score it.

`evaluate` rolls out every task `samples` times (batched) and returns one `EpisodeRecord` per episode: the task's
facts (type / hops / level / data source), the env's `EpisodeSummary` as it is (EM, F1, cover-EM, format, actions,
evidence recall, success) and the trajectory. `summarize` turns records into the report's numbers; pass@k uses the
unbiased estimator 1 - C(n-c, k) / C(n, k) over the n samples of a task with c correct ones (correct = the env's
success rule, `EpisodeSummary.success`: `env.success_metric` of the answer >= `env.success_threshold`, EM 1 by
default). Every caller that evaluates a model — `searchgym eval`, `searchgym teacher passrate`, the demo and
`scripts/experiments.py` — goes through `evaluate`.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.config import EnvConfig
from searchgym.env.env import SearchEnv
from searchgym.env.records import EpisodeSummary
from searchgym.index.base import SearchEngine
from searchgym.io import read_jsonl
from searchgym.rollout.episodes import RolloutConfig, Trajectory, rollout
from searchgym.rollout.generate import Generator
from searchgym.types import Task

SCORES = (
    "reward",
    "em",
    "f1",
    "cover_em",
)  # per-group means in the summary; em / f1 / cover_em are answer scores
ACTIONS = ("turns", "searches", "accesses")
GROUPS = ("type", "hops", "level", "source")  # the summary's `by` tables
WORLD_SOURCE = "searchgym"  # `EpisodeRecord.source` of a task from a SearchGym task set
EXTERNAL_TYPE = "external"  # `Task.type` of a question from an external QA file


@dataclass
class EvalConfig(YamlConfig):
    split: str = "test"  # "" = every split of the task set
    limit: int = 0  # evaluate the first `limit` tasks of the split (0 = all)
    samples: int = 1  # rollouts per task; pass@k is reported for every k up to this
    batch_size: int = 16  # episodes generated together
    env: EnvConfig = field(default_factory=EnvConfig)  # success = env.success_metric >= env.success_threshold
    rollout: RolloutConfig = field(default_factory=lambda: RolloutConfig(temperature=0.0))

    def __post_init__(self) -> None:
        if self.samples < 1 or self.batch_size < 1 or self.limit < 0:
            raise ConfigError(
                f"eval: samples={self.samples} and batch_size={self.batch_size} must be >= 1, "
                f"limit={self.limit} >= 0"
            )
        if self.samples > 1 and self.rollout.temperature == 0:
            raise ConfigError("samples > 1 with greedy decoding repeats one answer; set a temperature > 0")


@dataclass(frozen=True)
class EpisodeRecord:
    """One evaluated episode. Every score comes from `episode`, the env's own summary; nothing is defaulted."""

    task_id: str
    sample: int  # 0 .. samples-1
    question: str
    gold: tuple[str, ...]  # the answer and its aliases
    type: str  # Task.type ("external" for a QA file)
    hops: int
    level: int
    source: str  # "searchgym" for a task set; the QA file's data_source otherwise
    has_evidence: bool  # the task has an evidence chain (evidence recall is meaningful)
    episode: EpisodeSummary
    trajectory: Trajectory

    @classmethod
    def of(cls, task: Task, sample: int, trajectory: Trajectory) -> EpisodeRecord:
        if trajectory.episode is None:
            raise ValueError(f"task {task.id}: the rollout returned an episode that never ended")
        return cls(
            task_id=task.id,
            sample=sample,
            question=task.question,
            gold=tuple(task.answers),
            type=task.type,
            hops=task.hops,
            level=task.level,
            source=str(task.meta.get("data_source", WORLD_SOURCE)),
            has_evidence=bool(task.evidence),
            episode=trajectory.episode,
            trajectory=trajectory,
        )

    @property
    def success(self) -> bool:
        return self.episode.success

    def score(self, name: str) -> float:
        """`reward` or an answer score of the env (`em`, `f1`, `cover_em`); a missing name raises KeyError."""
        return float(self.episode.reward if name == "reward" else self.episode.scores[name])

    def group(self, name: str) -> str:
        return str(getattr(self, name))

    def to_dict(self) -> dict[str, Any]:
        """One line of trajectories.jsonl: the flat columns the viewer lists, plus the whole trajectory."""
        ep = self.episode
        return {
            "task_id": self.task_id,
            "sample": self.sample,
            "question": self.question,
            "gold": list(self.gold),
            "type": self.type,
            "hops": self.hops,
            "level": self.level,
            "source": self.source,
            "answer": ep.answer,
            "done_reason": ep.done_reason,
            **{k: self.score(k) for k in SCORES},
            **{k: getattr(ep, k) for k in ACTIONS},
            "success": ep.success,
            "format_ok": ep.format_ok,
            "invalid_turns": ep.invalid_turns,
            "evidence_recall": ep.evidence_recall,
            "has_evidence": self.has_evidence,
            "trajectory": self.trajectory.to_dict(),
        }


def select(tasks: Sequence[Task], split: str, limit: int) -> list[Task]:
    chosen = [t for t in tasks if not split or t.split == split]
    if not chosen:
        splits = sorted({t.split for t in tasks})
        raise ConfigError(f"no task in split {split!r}; the task set has splits {splits}")
    return chosen[:limit] if limit > 0 else chosen


def load_qa_jsonl(path: str | Path) -> list[Task]:
    """Questions in the Search-R1 format: {"id"?, "question", "golden_answers": [...], "data_source"?} per line.
    They become tasks of type "external" with no evidence chain; the data source is kept in `meta`."""
    tasks = []
    for n, row in enumerate(read_jsonl(Path(path)), 1):
        golds = row.get("golden_answers") if isinstance(row, dict) else None
        if not isinstance(golds, list) or not golds or not isinstance(row.get("question"), str):
            raise ConfigError(
                f'{path}:{n}: expected {{"question": "...", "golden_answers": ["...", ...]}}; fix that line'
            )
        golds = [str(g) for g in golds]
        tasks.append(
            Task(
                id=str(row.get("id", n)),
                question=row["question"],
                answer=golds[0],
                aliases=tuple(golds[1:]),
                type=EXTERNAL_TYPE,
                hops=0,
                level=0,
                split="test",
                evidence=(),
                meta={"data_source": str(row.get("data_source", "external"))},
            )
        )
    return tasks


def evaluate(
    tasks: Sequence[Task],
    engine: SearchEngine,
    generator: Generator,
    tokenizer,
    cfg: EvalConfig,
    on_batch: Callable[[int], None] | None = None,
) -> list[EpisodeRecord]:
    """One record per (task, sample), in task order then sample order. Batches are fixed by `cfg.batch_size` and
    each batch's sampling seed by its position, so the same inputs give the same records."""
    episodes = [(t, s) for t in tasks for s in range(cfg.samples)]
    records: list[EpisodeRecord] = []
    for start in range(0, len(episodes), cfg.batch_size):
        chunk = episodes[start : start + cfg.batch_size]
        rcfg = RolloutConfig.from_dict({**cfg.rollout.to_dict(), "seed": cfg.rollout.seed + start})
        trajs = rollout([t for t, _ in chunk], lambda: SearchEnv(engine, cfg.env), generator, tokenizer, rcfg)
        records += [EpisodeRecord.of(task, s, tr) for (task, s), tr in zip(chunk, trajs, strict=True)]
        if on_batch:
            on_batch(len(chunk))
    return records


def pass_at_k(n: int, c: int, k: int) -> float:
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _scores(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    return {
        "n": len(records),
        "success": _mean([float(r.success) for r in records]),
        **{k: _mean([r.score(k) for r in records]) for k in SCORES},
    }


def by_task(records: Sequence[EpisodeRecord]) -> dict[str, list[EpisodeRecord]]:
    """Records grouped by task id, in first-seen order."""
    out: dict[str, list[EpisodeRecord]] = defaultdict(list)
    for r in records:
        out[r.task_id].append(r)
    return dict(out)


def summarize(records: Sequence[EpisodeRecord]) -> dict[str, Any]:
    tasks = by_task(records)
    n = min(len(v) for v in tasks.values()) if tasks else 0
    passes = {
        f"pass@{k}": _mean([pass_at_k(len(v), sum(r.success for r in v), k) for v in tasks.values()])
        for k in sorted({1, max(n, 1)})
    }
    eps = [r.episode for r in records]
    turns = [e.turns for e in eps]
    with_evidence = [r.episode.evidence_recall for r in records if r.has_evidence]
    groups = {
        name: {
            key: _scores([r for r in records if r.group(name) == key])
            for key in sorted({r.group(name) for r in records}, key=_group_order)
        }
        for name in GROUPS
    }
    return {
        "episodes": len(records),
        "tasks": len(tasks),
        "samples": n,
        "overall": _scores(records),
        **passes,
        "actions": {k: _mean([getattr(e, k) for e in eps]) for k in ACTIONS},
        "max_turns_seen": max(turns, default=0),
        "evidence_recall": _mean(with_evidence) if with_evidence else None,
        "invalid_format_rate": _mean([0.0 if e.format_ok else 1.0 for e in eps]),
        "invalid_turn_rate": sum(e.invalid_turns for e in eps) / max(sum(turns), 1),
        "answered_rate": _mean([1.0 if e.answer is not None else 0.0 for e in eps]),
        "done_reasons": dict(sorted(Counter(e.done_reason for e in eps).items())),
        "by": groups,
    }


def _group_order(key: str) -> tuple[int, float, str]:
    """Numbers in numeric order (level 2 before level 10), then names."""
    try:
        return (0, float(key), "")
    except ValueError:
        return (1, 0.0, key)


def pass_rates(records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Per task: the share of its samples that were correct (TRAC's teacher pass rate)."""
    return {t: _mean([float(r.success) for r in v]) for t, v in sorted(by_task(records).items())}


def eval_meta(
    model: str,
    tasks: str,
    split: str,
    cfg: EvalConfig,
    world: str | Path | None = None,
    task_set: str | Path | None = None,
) -> dict[str, Any]:
    """The `meta` block of summary.json: what was evaluated, where its world and task set are (the viewer opens
    them from `meta.world` / `meta.task_set`), and the whole config. A task set inside the world's `tasks/` is
    recorded by its name, any other by its path."""
    if world is not None and task_set is not None and Path(task_set).parent == Path(world) / "tasks":
        task_set = Path(task_set).name
    return {
        "model": model,
        "tasks": tasks,
        "split": split,
        "protocol": cfg.env.protocol,
        "world": None if world is None else str(world),
        "task_set": None if task_set is None else str(task_set),
        "success_rule": f"{cfg.env.success_metric} >= {cfg.env.success_threshold}",
        "config": cfg.to_dict(),
    }
