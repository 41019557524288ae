"""Per-edge verification: an edge is usable only if an agent could learn it by searching.

For edge (u, r, v) with holder h (the side whose article states it) and other end o:
- grounded: the recorded fact sentence is in h's article and names o exactly (LLM-written worlds record the
  sentence of the written text that states the fact, found by exact reading or the judge, see `llm.py`);
- retrievable: the query "<h's name> <one of r's query phrases>" returns h's article within the engine's top-k
  (the phrase is picked by edge id, so the check is deterministic);
- contradicted (a failure): the corpus claims r for h with a different other end -- another edge, a planted
  conflict, a distractor or a stray LLM statement (`claims.py`) -- or, for 1-1 and symmetric relations, claims a
  different holder for o.

The checks run on columns (`EdgeColumns`), so the world build verifies from memory and `verify_world` from a loaded
`World` with the same code. The retrieval check needs one search per holder, not per edge (`retrievable`: it decides
what one search per edge decides, `retrieved`), and is split over worker processes (`workers`), each querying the
engine the parent opened (inherited copy-on-write by fork); results never depend on the split.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from searchgym.parallel import fork_map, shared, spans
from searchgym.types import SearchHit
from searchgym.world.claims import Claim, noise_claims
from searchgym.world.types import Edge

if TYPE_CHECKING:
    from searchgym.world.schema import RelationSpec, Schema
    from searchgym.world.store import World

CHECKS = ("grounded", "retrievable", "contradicted")
BATCH = 1024  # queries per batch_search call
CHUNK = 16 * BATCH  # queries per unit of work handed to a worker process
# Engines whose score for a query is the sum over its words of a non-negative score per word (BM25 over a
# bag of words, typo matches included), so `retrievable` may settle edges from the holder's name alone.
# tests/test_verify.py checks the sum on both. TOLERANCE absorbs float32 rounding in tantivy's sums.
ADDITIVE = frozenset({"bm25s", "tantivy"})
TOLERANCE = 1e-5


class Retriever(Protocol):
    """What verification needs of a search engine (any `searchgym.index` engine qualifies). Engines that also
    have `rank(query, k)` -> [(doc id, score)] (the same ranking without reading hit texts) are asked that."""

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]: ...


@dataclass
class EdgeColumns:
    """The edges to verify, one position per edge (edge id = position)."""

    relation: np.ndarray  # relation index into schema.relations
    holder: np.ndarray  # entity index of the holder
    other: np.ndarray  # entity index of the other end
    names: list[str]  # entity index -> name
    doc_ids: list[str | None]  # entity index -> document id of its article (None: no article)
    grounded: np.ndarray  # bool per edge, decided by whoever wrote or read the articles


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


def query_phrase(relation: RelationSpec, edge_id: int) -> str:
    phrases = list(relation.query)
    return phrases[edge_id % len(phrases)] if phrases else relation.name.replace("_", " ")


def edge_queries(world: Any) -> tuple[list[str], list[str]]:
    """("holder name + relation phrase", holder article id) per edge of a `World`: the one search per edge whose
    top-k verdicts the retrieval check must reproduce (tests, `bench_verify.py --reference`)."""
    rels = {r.name: r for r in world.schema.relations}
    queries, targets = [], []
    for e in world.edges:
        holder = world.holder(e)
        queries.append(f"{world.entities[holder].name} {query_phrase(rels[e.relation], e.id)}")
        targets.append(world.doc_of(holder).id)
    return queries, targets


# -- contradictions


def contradicted(
    cols: EdgeColumns, schema: Schema, claims: list[Claim], index_of: dict[str, int]
) -> np.ndarray:
    """Bool per edge: the edges plus `claims` state a second other end for (relation, holder), or (1-1 and
    symmetric relations) a second holder for (relation, other end)."""
    rel_index = {r.name: i for i, r in enumerate(schema.relations)}
    unknown: dict[str, int] = {}  # claim ends that are not entities (distractors) get fresh indices

    def key(x: str) -> int:
        i = index_of.get(x)
        return i if i is not None else unknown.setdefault(x, len(cols.names) + len(unknown))

    extra = np.asarray([(rel_index[r], key(h), key(o)) for r, h, o in claims], dtype=np.int64).reshape(-1, 3)
    rel = np.concatenate([cols.relation.astype(np.int64), extra[:, 0]])
    hold = np.concatenate([cols.holder.astype(np.int64), extra[:, 1]])
    oth = np.concatenate([cols.other.astype(np.int64), extra[:, 2]])
    n = len(cols.relation)
    bad = _two_values(rel, hold, oth)[:n]
    both = np.array([r.one_holder_per_other for r in schema.relations], dtype=bool)
    if both.any():
        sel = both[rel]
        rev = np.zeros(len(rel), dtype=bool)
        rev[sel] = _two_values(rel[sel], oth[sel], hold[sel])
        bad |= rev[:n]
    return bad


def _two_values(group: np.ndarray, key: np.ndarray, value: np.ndarray) -> np.ndarray:
    """Bool per row: its (group, key) occurs with more than one distinct value."""
    if len(group) == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort((value, key, group))
    g, k, v = group[order], key[order], value[order]
    new_key = np.r_[True, (g[1:] != g[:-1]) | (k[1:] != k[:-1])]
    starts = np.flatnonzero(new_key)
    key_id = np.cumsum(new_key) - 1
    first = v[starts][key_id]  # the smallest value of each (group, key)
    last = v[np.r_[starts[1:], len(v)] - 1][key_id]
    out = np.zeros(len(group), dtype=bool)
    out[order] = first != last
    return out


# -- retrieval


def _hits(span: tuple[int, int]) -> bytes:
    engine, queries, targets, k = (shared()[x] for x in ("engine", "queries", "targets", "k"))
    out = bytearray()
    rank = getattr(engine, "rank", None)
    if rank is not None:
        for doc, q in zip(targets[span[0] : span[1]], queries[span[0] : span[1]], strict=True):
            out.append(doc is not None and any(d == doc for d, _ in rank(q, k)))
        return bytes(out)
    for s in range(span[0], span[1], BATCH):
        e = min(s + BATCH, span[1])
        for doc, hits in zip(targets[s:e], engine.batch_search(queries[s:e], k), strict=True):
            out.append(doc is not None and any(h.doc_id == doc for h in hits))
    return bytes(out)


def retrieved(
    engine: Retriever,
    queries: list[str],
    targets: list[str | None],
    top_k: int,
    workers: int = 1,
    advance: Any = None,
) -> np.ndarray:
    """Bool per query: `targets[i]` is among the engine's top-k hits for `queries[i]` (one search each)."""
    advance = advance or (lambda n: None)
    parts: list[bytes] = []
    chunks = spans(len(queries), CHUNK)
    results = fork_map(_hits, chunks, workers, engine=engine, queries=queries, targets=targets, k=top_k)
    for (s, e), part in zip(chunks, results, strict=True):
        parts.append(part)
        advance(e - s)
    return np.frombuffer(b"".join(parts), dtype=np.uint8).astype(bool)


def _name_leads(span: tuple[int, int]) -> bytes:
    """Per holder of the span: its article's score for its bare name minus the k-th best other article's
    (-inf when its article is not among the top k+1)."""
    engine, names, docs, k = (shared()[x] for x in ("engine", "names", "docs", "k"))
    out = np.full(span[1] - span[0], -np.inf)
    for i, (name, doc) in enumerate(zip(names[span[0] : span[1]], docs[span[0] : span[1]], strict=True)):
        hits = engine.rank(name, k + 1)
        own = [s for d, s in hits if d == doc]
        if own:
            others = [s for d, s in hits if d != doc]
            out[i] = own[0] - (others[k - 1] if len(others) >= k else 0.0)
    return out.tobytes()


def retrievable(
    engine: Retriever,
    cols: EdgeColumns,
    phrases: list[str],
    top_k: int,
    workers: int = 1,
    advance: Any = None,
) -> np.ndarray:
    """Bool per edge: the holder's article is among the engine's top-k for "<holder's name> <phrases[edge]>".

    Decides exactly what `retrieved` decides with one search per edge, with one search per holder and one per
    phrase, for engines whose score is a sum over query words of non-negative parts (`ADDITIVE`). Then an
    article's score for "name phrase" is its score for the name plus its score for the phrase, so if the
    holder's article leads the k-th best other article on the bare name by more than any article scores on the
    phrase alone, at most k-1 articles can outscore it on the whole query. Edges this does not settle (a
    holder whose article does not lead on its name by enough) get the full search."""
    advance = advance or (lambda n: None)
    n = len(cols.holder)

    def one_search_each(edges: list[int], advance: Any = None) -> np.ndarray:
        holder = cols.holder[edges].tolist()
        queries = [f"{cols.names[h]} {phrases[e]}" for e, h in zip(edges, holder, strict=True)]
        return retrieved(engine, queries, [cols.doc_ids[h] for h in holder], top_k, workers, advance)

    if getattr(engine, "name", None) not in ADDITIVE or not hasattr(engine, "rank") or n == 0:
        return one_search_each(list(range(n)), advance)
    distinct = sorted(set(phrases))
    phrase_best = {p: max((s for _, s in engine.rank(p, 1)), default=0.0) for p in distinct}
    holders = np.unique(cols.holder)
    holders = holders[[cols.doc_ids[h] is not None for h in holders.tolist()]]
    names = [cols.names[h] for h in holders.tolist()]
    docs = [cols.doc_ids[h] for h in holders.tolist()]
    held = np.bincount(cols.holder, minlength=len(cols.names))[holders]
    chunks = spans(len(holders), CHUNK)
    leads = np.full(len(cols.names), -np.inf)
    parts = fork_map(_name_leads, chunks, workers, engine=engine, names=names, docs=docs, k=top_k)
    for (a, b), part in zip(chunks, parts, strict=True):
        leads[holders[a:b]] = np.frombuffer(part)
        advance(int(held[a:b].sum()))
    best = np.array([phrase_best[p] for p in phrases])
    lead = leads[cols.holder]
    settled = lead > best + TOLERANCE * (np.abs(lead) + best)
    rest = np.flatnonzero(~settled)
    found = settled.copy()
    found[rest] = one_search_each(rest.tolist())
    advance(n - int(held.sum()))
    return found


def check_edges(
    cols: EdgeColumns,
    schema: Schema,
    claims: list[Claim],
    index_of: dict[str, int],
    engine: Retriever,
    top_k: int = 5,
    workers: int = 1,
    advance: Any = None,
) -> VerificationReport:
    """Run the three checks over `cols` (see the module docstring)."""
    rels = schema.relations
    rel = cols.relation.tolist()
    phrases = [query_phrase(rels[r], e) for e, r in enumerate(rel)]
    found = retrievable(engine, cols, phrases, top_k, workers, advance)
    del phrases
    bad = contradicted(cols, schema, claims, index_of)
    failed = np.stack([~cols.grounded.astype(bool), ~found, bad], axis=1)
    failures: dict[int, list[str]] = {e: [] for e in range(len(rel))}
    for e in np.flatnonzero(failed.any(axis=1)).tolist():
        failures[e] = [name for name, f in zip(CHECKS, failed[e].tolist(), strict=True) if f]
    names = [r.name for r in rels]
    return VerificationReport(failures, {e: names[r] for e, r in enumerate(rel)}, top_k)


def verify_world(
    world: World, engine: Retriever, top_k: int = 5, progress: bool = True, workers: int = 1
) -> VerificationReport:
    """Check every edge of a loaded `world` (see the module docstring)."""
    from rich.progress import Progress

    ids = list(world.entities)
    index_of = {x: i for i, x in enumerate(ids)}
    rel_index = {r.name: i for i, r in enumerate(world.schema.relations)}
    edges = list(world.edges)
    if [e.id for e in edges] != list(range(len(edges))):
        raise ValueError(f"{world.path}/edges.jsonl: edge ids must be 0..n-1 in order; rebuild the world")
    ends = [world.orient(e) for e in edges]
    docs = {d.id: d for d in world.documents if d.entity is not None}
    grounded = np.zeros(len(edges), dtype=bool)
    for e, (h, o) in zip(edges, ends, strict=True):
        fact, doc = world.facts.get(e.id), docs.get(h)
        other_name = world.entities[o].name
        grounded[e.id] = (
            doc is not None and fact is not None and other_name in fact.sentence and fact.sentence in doc.text
        )
    cols = EdgeColumns(
        relation=np.array([rel_index[e.relation] for e in edges], dtype=np.int64),
        holder=np.array([index_of[h] for h, _ in ends], dtype=np.int64),
        other=np.array([index_of[o] for _, o in ends], dtype=np.int64),
        names=[world.entities[x].name for x in ids],
        doc_ids=[x if x in docs else None for x in ids],
        grounded=grounded,
    )

    def edge_ends(eid: int) -> Claim:
        return (edges[eid].relation, *ends[eid])

    claims = noise_claims(world.schema, world.noise, edge_ends)
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("verifying edges (retrieval)", total=len(edges))
        return check_edges(
            cols, world.schema, claims, index_of, engine, top_k, workers, lambda n: bar.advance(task, n)
        )
