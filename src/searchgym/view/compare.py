"""Two runs on the same tasks: per task, did it flip?

A task's result in a run is its success rate over that run's samples of it. Status of a task:

| status | A | B |
| --- | --- | --- |
| `fixed` | no sample succeeded | some sample succeeded |
| `broken` | some sample succeeded | none did |
| `both` | succeeded in both | |
| `neither` | failed in both | |
| `only_a` / `only_b` | the task is in one run only | |
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from searchgym.view.records import Row

STATUSES = ("fixed", "broken", "both", "neither", "only_a", "only_b")


def _by_task(rows: Sequence[Row]) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        out[r.task_id].append(r)
    return out


def _side(rows: list[Row] | None) -> dict[str, Any] | None:
    if not rows:
        return None
    rewards = [r.reward for r in rows if r.reward is not None]
    return {
        "n": len(rows),
        "success": sum(r.success for r in rows) / len(rows),
        "reward": sum(rewards) / len(rewards) if rewards else None,
        "answer": rows[0].answer,
        "i": rows[0].i,
        "turns": rows[0].turns,
    }


def status(a: dict[str, Any] | None, b: dict[str, Any] | None) -> str:
    if a is None:
        return "only_b"
    if b is None:
        return "only_a"
    ok_a, ok_b = a["success"] > 0, b["success"] > 0
    return {(False, True): "fixed", (True, False): "broken", (True, True): "both"}.get(
        (ok_a, ok_b), "neither"
    )


def compare(
    rows_a: Sequence[Row],
    rows_b: Sequence[Row],
    only: str = "",
    q: str = "",
    offset: int = 0,
    limit: int = 100,
) -> dict[str, Any]:
    if only and only not in STATUSES:
        raise ValueError(f"status: {only!r} is not one of {list(STATUSES)}")
    ta, tb = _by_task(rows_a), _by_task(rows_b)
    items = []
    for tid in list(ta) + [t for t in tb if t not in ta]:
        a, b = _side(ta.get(tid)), _side(tb.get(tid))
        ref = (ta.get(tid) or tb.get(tid))[0]
        items.append(
            {
                "task_id": tid,
                "question": ref.question,
                "gold": ref.gold,
                "type": ref.type,
                "hops": ref.hops,
                "level": ref.level,
                "a": a,
                "b": b,
                "status": status(a, b),
            }
        )
    counts = {s: sum(it["status"] == s for it in items) for s in STATUSES}
    kept = [
        it
        for it in items
        if (not only or it["status"] == only)
        and (not q or q.lower() in f"{it['question']}\n{it['task_id']}".lower())
    ]
    return {
        "counts": counts,
        "total": len(items),
        "matched": len(kept),
        "items": kept[offset : offset + limit],
    }
