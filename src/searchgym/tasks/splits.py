"""Train / dev / test splits of a task set, and the leakage each split mode leaves.

- "start" (default): a task's split is a hash of its start entity (the first entity of its evidence chain), so
  every task starting at the same entity shares a split: no question, no (start entity, relation path) and no
  test start *as a start* is seen in training. Entities met along the way -- intermediates, anchors, answers --
  can appear in both splits, and a test task's whole edge path can lie inside a longer train task.
- "entity": entity-disjoint. Tasks are visited in a seeded hash order; each goes to its hashed split if none of its
  entities (every evidence entity, named anchor and the answer) already belongs to another split, else to the first
  split in `splits` order that is free for all of them, else it is dropped. No entity of a test (or dev) task
  appears anywhere in a train task. The price: hubs (countries, big cities) end up in one split, so held-out tasks
  avoid the train split's hubs, and tasks touching two splits' entities are dropped (`dropped` in the report).

`leakage(tasks)` measures, for dev and test against train: the share of their entities that occur in some train
task, of their start entities that occur in some train task, of their answers that answer some train task, and of
their tasks whose every edge lies inside one train task.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import defaultdict
from typing import Any

from searchgym.types import Task

SPLIT_MODES = ("start", "entity")


def assign_split(key: str, seed: int, ratios: dict[str, float]) -> str:
    """Deterministic split from a hash of the key: the same key always lands in the same split."""
    u = int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:15], 16) / 16**15
    total, acc = sum(ratios.values()), 0.0
    for name, r in ratios.items():
        acc += r / total
        if u < acc:
            return name
    return list(ratios)[-1]


def task_entities(t: Task) -> set[str]:
    """Every entity a task touches: evidence steps, entities named in the question, the answer."""
    out = {s.entity for s in t.evidence} | set(t.meta.get("named", ()))
    if t.meta.get("answer_entity"):
        out.add(t.meta["answer_entity"])
    return out


def entity_disjoint(tasks: list[Task], seed: int, ratios: dict[str, float]) -> tuple[list[Task], int]:
    """Re-split `tasks` so that no two splits share an entity (see the module docstring); (kept tasks in their
    original order, number dropped)."""
    order = sorted(
        range(len(tasks)), key=lambda i: hashlib.sha256(f"{seed}|order|{tasks[i].id}".encode()).digest()
    )
    owner: dict[str, str] = {}
    chosen: dict[int, str] = {}
    for i in order:
        t = tasks[i]
        ents = task_entities(t)
        for split in [t.split, *(s for s in ratios if s != t.split)]:
            if all(owner.get(x, split) == split for x in ents):
                chosen[i] = split
                for x in ents:
                    owner[x] = split
                break
    kept = [dataclasses.replace(t, split=chosen[i]) for i, t in enumerate(tasks) if i in chosen]
    return kept, len(tasks) - len(kept)


def _edges(t: Task) -> frozenset[int]:
    return frozenset(s.edge for s in t.evidence if s.edge is not None)


def leakage(tasks: list[Task]) -> dict[str, Any]:
    """How much of each held-out split is visible in the train split (see the module docstring)."""
    train = [t for t in tasks if t.split == "train"]
    seen: set[str] = set()
    answers: set[str] = set()
    by_edge: dict[int, set[int]] = defaultdict(set)
    for k, t in enumerate(train):
        seen |= task_entities(t)
        answers.add(t.answer)
        for e in _edges(t):
            by_edge[e].add(k)
    out: dict[str, Any] = {}
    for split in sorted({t.split for t in tasks} - {"train"}):
        held = [t for t in tasks if t.split == split]
        ents = set().union(*(task_entities(t) for t in held)) if held else set()
        inside = 0
        for t in held:
            edges = _edges(t)
            if edges and set.intersection(*(by_edge.get(e, set()) for e in edges)):
                inside += 1
        n = max(len(held), 1)
        out[split] = {
            "tasks": len(held),
            "entities_in_train": round(len(ents & seen) / max(len(ents), 1), 4),
            "starts_in_train": round(sum(t.evidence[0].entity in seen for t in held) / n, 4),
            "answers_in_train": round(sum(t.answer in answers for t in held) / n, 4),
            "paths_inside_a_train_task": round(inside / n, 4),
        }
    return out
