"""What the corpus states beyond the graph's own edges, as (relation, holder, other end) claims.

Every edge is stated by its holder's article (and, for non-symmetric relations, mentioned consistently by the other
end's article: the schema refuses wordings that would read otherwise). Everything else the corpus states is a row
of noise.jsonl, and this module turns those rows into claims:

- "conflict": the holder phrasing of edge `edge` with a wrong other end, written into the article `doc`;
- "distractor": an article about a near-namesake (a pseudo-entity with its own id, name, type and attributes)
  and its claims about real entities;
- "claim": a statement found in LLM-written text that is not one of the graph's edges.

Ids are entity ids or, for distractors, their document ids. A symmetric relation's claim is claimed both ways.
Verification marks edges these claims contradict; task synthesis checks answers against them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from searchgym.world.schema import Schema
from searchgym.world.types import Entity

Claim = tuple[str, str, str]  # (relation, holder id, other-end id)


def noise_claims(
    schema: Schema, rows: Iterable[dict[str, Any]], edge_ends: Callable[[int], Claim]
) -> list[Claim]:
    """Claims of noise.jsonl rows; `edge_ends(edge id)` gives an edge's (relation, holder, other end)."""
    out: list[Claim] = []
    for row in rows:
        kind = row.get("kind")
        if kind == "conflict" and row.get("edge") is not None:
            rel, holder, _ = edge_ends(int(row["edge"]))
            found = [(rel, holder, row["doc"])]
        elif kind in ("distractor", "claim"):
            stated = row.get("claims", []) if kind == "distractor" else [row]
            found = []
            for c in stated:
                holder, other = schema.relation(c["relation"]).orient(c["source"], c["target"])
                found.append((c["relation"], holder, other))
        else:
            continue
        for rel, holder, other in found:
            out.append((rel, holder, other))
            if schema.relation(rel).symmetric:
                out.append((rel, other, holder))
    return out


def distractor_entities(rows: Iterable[dict[str, Any]]) -> dict[str, Entity]:
    """The near-namesakes of distractor articles as entities (id = their document id)."""
    return {
        r["doc"]: Entity(r["doc"], r["type"], r["name"], dict(r.get("attrs", {})))
        for r in rows
        if r.get("kind") == "distractor" and "type" in r
    }
