"""Per-edge verification: an edge is usable only if an agent could learn it by searching.

For edge (u, r, v) with holder h (the side whose article states it) and other end o:
- grounded: the recorded fact sentence is in h's article and names o exactly (for LLM-rewritten worlds, where
  sentences are paraphrased, o's exact name occurring in h's article is accepted instead);
- retrievable: the query "<h's name> <one of r's query phrases>" returns h's article within the engine's top-k
  (the phrase is picked by edge id, so the check is deterministic);
- contradicted (a failure): noise.jsonl records a conflict for the edge, or another edge states r for h with a
  different other end.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

from searchgym.types import Document, SearchHit
from searchgym.world.types import Edge

if TYPE_CHECKING:
    from searchgym.world.schema import RelationSpec
    from searchgym.world.store import World

CHECKS = ("grounded", "retrievable", "contradicted")


class Retriever(Protocol):
    """What verification needs of a search engine (any `searchgym.index` engine qualifies)."""

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]: ...


BATCH = 1024  # queries per batch_search call


@dataclass
class VerificationReport:
    edge_failures: dict[int, list[str]]  # edge id -> failed checks (empty list: verified)
    relation_of: dict[int, str] = field(repr=False)  # edge id -> relation name
    top_k: int = 5

    def verified(self, edge_id: int) -> bool:
        return not self.edge_failures.get(edge_id)

    def apply(self, edges: list[Edge]) -> list[Edge]:
        """Edges with `verified` and `failures` set from this report."""
        out = []
        for e in edges:
            failed = tuple(self.edge_failures.get(e.id, ()))
            out.append(replace(e, verified=not failed, failures=failed))
        return out

    def summary(self) -> dict[str, Any]:
        """Per relation: total, verified, failures by check (what the world manifest records)."""
        per: dict[str, dict[str, Any]] = {}
        for eid, failed in sorted(self.edge_failures.items()):
            row = per.setdefault(self.relation_of[eid], {"total": 0, "verified": 0, "failures": Counter()})
            row["total"] += 1
            row["verified"] += not failed
            row["failures"].update(failed)
        return {
            rel: {**row, "failures": {c: row["failures"].get(c, 0) for c in CHECKS}}
            for rel, row in sorted(per.items())
        }

    def totals(self) -> dict[str, int]:
        n = len(self.edge_failures)
        return {"total": n, "verified": sum(1 for f in self.edge_failures.values() if not f)}


def _recorded_conflicts(world: World) -> set[int]:
    return {int(r["edge"]) for r in world.noise if r.get("kind") == "conflict" and r.get("edge") is not None}


def _article(world: World, entity_id: str) -> Document | None:
    try:
        return world.doc_of(entity_id)
    except KeyError:
        return None


def _query_phrase(relation: RelationSpec, edge_id: int) -> str:
    phrases = list(getattr(relation, "query", ()) or ())
    return phrases[edge_id % len(phrases)] if phrases else relation.name.replace("_", " ")


def verify_world(
    world: World, engine: Retriever, top_k: int = 5, progress: bool = True, rewritten: bool = False
) -> VerificationReport:
    """Check every edge of `world` (see the module docstring).

    `rewritten=True` is the lenient grounding check for corpora paraphrased freely outside SearchGym. The built-in
    LLM rewrite asks the model to keep every fact sentence verbatim, so its worlds get the strict check: a fact whose
    sentence did not survive is dropped.
    """
    from rich.progress import Progress

    edges = list(world.edges)
    failures: dict[int, list[str]] = {e.id: [] for e in edges}
    holders = {e.id: world.holder(e) for e in edges}
    others = {e.id: world.other_end(e) for e in edges}

    # uncontradicted: recorded conflicts, or one holder stating the same relation with two different other ends
    contradicted = _recorded_conflicts(world)
    stated: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in edges:
        stated[(e.relation, holders[e.id])].add(others[e.id])
    # every cardinality is functional from the holder side: a holder states at most one other end per relation
    relations = {r.name: r for r in world.schema.relations}

    queries, holder_docs = [], []
    for e in edges:
        holder_doc = _article(world, holders[e.id])
        other_name = world.entities[others[e.id]].name
        fact = world.facts.get(e.id)
        if rewritten:
            grounded = holder_doc is not None and other_name in holder_doc.text
        else:
            grounded = (
                holder_doc is not None
                and fact is not None
                and other_name in fact.sentence
                and fact.sentence in holder_doc.text
            )
        if not grounded:
            failures[e.id].append("grounded")
        queries.append(f"{world.entities[holders[e.id]].name} {_query_phrase(relations[e.relation], e.id)}")
        holder_docs.append(holder_doc.id if holder_doc is not None else None)

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("verifying edges (retrieval)", total=len(edges))
        for start in range(0, len(edges), BATCH):
            results = engine.batch_search(queries[start : start + BATCH], top_k)
            for e, doc_id, hits in zip(
                edges[start : start + BATCH], holder_docs[start : start + BATCH], results, strict=True
            ):
                if doc_id is None or all(h.doc_id != doc_id for h in hits):
                    failures[e.id].append("retrievable")
            bar.advance(task, len(results))

    for e in edges:
        if e.id in contradicted or len(stated[(e.relation, holders[e.id])]) > 1:
            failures[e.id].append("contradicted")
    return VerificationReport(failures, {e.id: e.relation for e in edges}, top_k)
