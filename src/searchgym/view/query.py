"""Filter, sort, count and page a run's episode rows (server side: the browser only ever holds one page)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from searchgym.view.records import Row

SORT_KEYS = (
    "i",
    "task_id",
    "reward",
    "f1",
    "em",
    "turns",
    "searches",
    "accesses",
    "hops",
    "level",
    "type",
    "evidence_recall",
    "step",
    "advantage",
)
GROUP_KEYS = ("type", "hops", "level", "split")


@dataclass
class Filters:
    type: str = ""
    hops: int | None = None
    level: int | None = None
    split: str = ""
    success: bool | None = None
    reward_min: float | None = None
    reward_max: float | None = None
    invalid: bool | None = None  # True: only invalid-format episodes; False: only valid ones
    q: str = ""  # case-insensitive text in the question, the answer or the task id
    step: int | None = None  # training rollouts of one optimizer step
    group: int | None = None

    def keep(self, r: Row) -> bool:
        if self.type and r.type != self.type:
            return False
        if self.hops is not None and r.hops != self.hops:
            return False
        if self.level is not None and r.level != self.level:
            return False
        if self.split and r.split != self.split:
            return False
        if self.success is not None and r.success != self.success:
            return False
        if self.reward_min is not None and (r.reward is None or r.reward < self.reward_min):
            return False
        if self.reward_max is not None and (r.reward is None or r.reward > self.reward_max):
            return False
        if self.invalid is not None and (r.format_ok is False) != self.invalid:
            return False
        if self.step is not None and r.step != self.step:
            return False
        if self.group is not None and r.group != self.group:
            return False
        if self.q:
            text = f"{r.question}\n{r.answer or ''}\n{r.task_id}".lower()
            if self.q.lower() not in text:
                return False
        return True


def _key(name: str):
    def key(r: Row) -> tuple:
        v = getattr(r, name)
        return (v is None, v if v is not None else 0, r.i)  # missing values last

    return key


def stats(rows: Sequence[Row]) -> dict[str, Any]:
    n = len(rows)

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    return {
        "n": n,
        "success": mean([1.0 if r.success else 0.0 for r in rows]),
        "reward": mean([r.reward for r in rows if r.reward is not None]),
        "f1": mean([r.f1 for r in rows if r.f1 is not None]),
        "turns": mean([float(r.turns) for r in rows if r.turns is not None]),
        "invalid_format": mean(
            [1.0 if r.format_ok is False else 0.0 for r in rows if r.format_ok is not None]
        ),
    }


def groups(rows: Sequence[Row]) -> dict[str, dict[str, dict[str, Any]]]:
    """n and success rate per type / hops / level / split of the rows."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for key in GROUP_KEYS:
        buckets: dict[str, list[Row]] = defaultdict(list)
        for r in rows:
            v = getattr(r, key)
            if v not in (None, ""):
                buckets[str(v)].append(r)
        out[key] = {
            k: {"n": len(v), "success": sum(r.success for r in v) / len(v)}
            for k, v in sorted(buckets.items(), key=lambda kv: (len(kv[0]), kv[0]))
        }
    return out


def facets(rows: Sequence[Row]) -> dict[str, list[Any]]:
    """Every value of the filterable fields (the filter menus)."""
    out: dict[str, list[Any]] = {}
    for key in (*GROUP_KEYS, "step"):
        values = {getattr(r, key) for r in rows} - {None, ""}
        out[key] = sorted(values, key=lambda v: (not isinstance(v, int), v))
    return out


def page(
    rows: Sequence[Row], f: Filters, sort: str = "i", desc: bool = False, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    if sort not in SORT_KEYS:
        raise ValueError(f"sort: {sort!r} is not one of {list(SORT_KEYS)}")
    kept = [r for r in rows if f.keep(r)]
    ordered = sorted(kept, key=_key(sort), reverse=desc) if sort != "i" or desc else kept
    if desc:  # missing values stay last when descending too
        ordered = [r for r in ordered if getattr(r, sort) is not None] + [
            r for r in ordered if getattr(r, sort) is None
        ]
    return {
        "total": len(rows),
        "stats": stats(kept),
        "groups": groups(kept),
        "offset": offset,
        "limit": limit,
        "rows": [r.to_dict() for r in ordered[offset : offset + limit]],
    }
