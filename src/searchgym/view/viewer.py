"""`Viewer`: the runs, world and tasks opened from PATH, and every answer the HTTP API gives about them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchgym.tasks.store import TaskSetError, load_tasks
from searchgym.types import Document, Task
from searchgym.view import compare as cmp
from searchgym.view import evidence, query, records
from searchgym.view.records import TaskInfo
from searchgym.view.sources import Run, ViewError, discover, locate_task_set, locate_world
from searchgym.world.store import World, WorldError


@dataclass
class Viewer:
    root: Path
    runs: dict[str, Run]
    pair: tuple[str, str] | None = None
    world: World | None = None
    tasks: dict[str, Task] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def open(
        cls, path: str | Path, world: str | Path | None = None, compare: str | Path | None = None
    ) -> Viewer:
        """Discover the runs of `path` (and of `compare`, paired with them), find their world and task sets,
        and index every records file. Raises ViewError (one line) for a path it cannot use."""
        root = Path(path)
        runs, pair = discover(root)
        roots = {r.id: root for r in runs}
        if compare is not None:
            other, _ = discover(Path(compare), prefix="b")
            taken = {r.id for r in runs}
            for r in other:
                r.id = r.id if r.id not in taken else f"{r.id}-2"
                roots[r.id] = Path(compare)
            pair = (runs[0].id, other[0].id)
            runs += other
        flag = Path(world) if world is not None else None
        if flag is not None and not (flag / "manifest.json").is_file():
            raise ViewError(f"--world {flag} is not a world directory (no manifest.json)")
        found = next((w for r in runs if (w := locate_world(r, roots[r.id], flag)) is not None), None)
        v = cls(root, {r.id: r for r in runs}, pair)
        if found is not None:
            try:
                v.world = World.load(found)
            except WorldError as e:
                raise ViewError(str(e)) from e
        else:
            v.notes.append("no world found (pass --world WORLD): evidence chains and entity pages are off")
        for r in runs:
            r.world = found
            r.task_set = locate_task_set(r, found, roots[r.id])
            v._load_tasks(r.task_set)
        if v.world is not None:  # tasks not in the named sets: any task set of the world
            for d in sorted((v.world.path / "tasks").glob("*/tasks.jsonl")):
                v._load_tasks(d.parent, only_missing=True)
        info = {tid: _task_info(t) for tid, t in v.tasks.items()}
        for r in runs:
            r.attach_tasks(info)
            r.refresh()
            if r.note:
                v.notes.append(f"{r.id}: {r.note}")
        return v

    def _load_tasks(self, task_set: Path | None, only_missing: bool = False) -> None:
        if task_set is None:
            return
        try:
            tasks = load_tasks(task_set)
        except TaskSetError as e:
            self.notes.append(f"task set {task_set}: {e}")
            tasks = load_tasks(task_set, check_world=False)
        for t in tasks:
            if not only_missing or t.id not in self.tasks:
                self.tasks.setdefault(t.id, t)

    # ---- API answers -------------------------------------------------------------------------------------
    def run(self, run_id: str) -> Run:
        if run_id not in self.runs:
            raise KeyError(f"no run {run_id!r}; runs: {sorted(self.runs)}")
        run = self.runs[run_id]
        run.refresh()
        return run

    def info(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "runs": [
                {
                    "id": r.id,
                    "label": r.label,
                    "kind": r.kind,
                    "episodes": len(r.rows),
                    "file": str(r.path),
                    "model": r.meta.get("model"),
                    "task_set": str(r.task_set) if r.task_set else None,
                    "note": r.note,
                }
                for r in self.runs.values()
            ],
            "compare": list(self.pair) if self.pair else None,
            "world": str(self.world.path) if self.world else None,
            "tasks": len(self.tasks),
            "notes": self.notes,
        }

    def episodes(self, run_id: str, f: query.Filters, sort: str, desc: bool, offset: int, limit: int):
        run = self.run(run_id)
        out = query.page(run.rows, f, sort, desc, offset, limit)
        out["facets"] = query.facets(run.rows)
        out["run"] = run_id
        return out

    def episode(self, run_id: str, i: int) -> dict[str, Any]:
        run = self.run(run_id)
        if not 0 <= i < len(run.rows):
            raise KeyError(f"run {run_id!r} has episodes 0..{len(run.rows) - 1}, not {i}")
        rec = run.record(i)
        row = run.rows[i]
        turns = records.turns(rec)
        task = self.tasks.get(row.task_id)
        chain = evidence.mark(evidence.chain(task, self.world), turns) if task else None
        group = []
        if row.step is not None and row.group is not None:
            group = [
                {
                    "i": r.i,
                    "sample": r.sample,
                    "success": r.success,
                    "reward": r.reward,
                    "advantage": r.advantage,
                }
                for r in run.rows
                if r.step == row.step and r.group == row.group
            ]
        return {
            "run": run_id,
            "kind": run.kind,
            "row": row.to_dict(),
            "turns": turns,
            "reward_parts": records.reward_parts(rec, run.env_config),
            "signals": records.signals(rec),
            "tokens": records.tokens(rec),
            "evidence": chain,
            "group": group,
            "task_meta": dict(task.meta) if task else None,
        }

    def compare(self, a: str, b: str, only: str, q: str, offset: int, limit: int) -> dict[str, Any]:
        out = cmp.compare(self.run(a).rows, self.run(b).rows, only, q, offset, limit)
        return {"a": a, "b": b, **out}

    def task_episodes(self, run_id: str, task_id: str) -> list[int]:
        return [r.i for r in self.run(run_id).rows if r.task_id == task_id]

    def entity(self, key: str) -> dict[str, Any]:
        """An entity (by id, name or article URL) or a non-entity article (by URL), like `world show`."""
        w = self.world
        if w is None:
            raise KeyError("no world is open; restart with --world WORLD")
        doc = w.doc_by_url(key)
        ent = w.entities.get(key) or w.entity_by_name(key)
        if ent is None and doc is not None and doc.entity:
            ent = w.entities.get(doc.entity)
        if ent is not None and doc is None:
            doc = _doc(w, ent.id)
        if ent is None and doc is None:
            raise KeyError(f"no entity, name or URL {key!r} in {w.path}")
        edges = []
        if ent is not None:
            for e in w.out_edges(ent.id) + w.in_edges(ent.id):
                fact = w.facts.get(e.id)
                other = e.target if e.source == ent.id else e.source
                edges.append(
                    {
                        "id": e.id,
                        "relation": e.relation,
                        "direction": "out" if e.source == ent.id else "in",
                        "other": other,
                        "other_name": w.entities[other].name if other in w.entities else other,
                        "other_url": d.url if (d := _doc(w, other)) else None,
                        "holder": "this" if w.holder(e) == ent.id else "other",
                        "verified": e.verified,
                        "failures": list(e.failures),
                        "sentence": fact.sentence if fact else None,
                    }
                )
        return {
            "entity": ent.to_dict() if ent else None,
            "document": doc.to_dict() if doc else None,
            "edges": edges,
            "tasks": sorted(
                t.id for t in self.tasks.values() if doc is not None and doc.url in t.evidence_urls
            )[:200],
        }


def _doc(w: World, entity_id: str) -> Document | None:
    try:
        return w.doc_of(entity_id)
    except KeyError:
        return None


def _task_info(t: Task) -> TaskInfo:
    return TaskInfo(t.question, t.answers, t.type, t.hops, t.level, t.split)
