"""Knowledge-graph generation from one integer seed.

Entities: counts per type from the type mix, fictional names (`names.NameRegistry`), attributes sampled with numpy.
Edges: for each relation (drawn first), every holder-side entity is picked with probability `coverage` and gets one
type-compatible other end, drawn with Zipf-like preferential weights (a fixed popularity 1/rank^s per entity).
Draws that break a temporal constraint, a self-loop, the per-entity degree cap or (for 1-1) uniqueness are redrawn
for a few rounds and then dropped; acyclic relations drop any edge that would close a cycle.
Holder-side uniqueness (n-1: one target per source; 1-n: one source per target) holds by construction.
Symmetric relations are matchings: entities picked with probability `coverage / 2` each seek an unmatched partner
(so about `coverage` of the type ends up paired); constraints must hold in both directions; a pair becomes two
edges, one per direction, with consecutive ids.
"""

from __future__ import annotations

import datetime as dt
import operator
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from searchgym.world.names import NameRegistry
from searchgym.world.schema import AttributeSpec, Constraint, RelationSpec, Schema

REDRAW_ROUNDS = 12  # redraws before a holder is left without this relation
_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@dataclass
class Graph:
    """A generated graph in columnar form (entity index = position in `ids`)."""

    schema: Schema
    ids: list[str]
    names: list[str]
    types: np.ndarray  # int16 type index per entity
    offsets: dict[str, int]  # first entity index of each type
    counts: dict[str, int]
    attrs: dict[str, dict[str, np.ndarray]]  # type -> attribute -> values by local index
    rel: np.ndarray  # int16 relation index per edge
    src: np.ndarray  # int64 source entity index per edge
    tgt: np.ndarray  # int64 target entity index per edge

    def type_of(self, i: int) -> str:
        return self.schema.entity_types[int(self.types[i])].name

    def attr_value(self, spec: AttributeSpec, type_name: str, i: int) -> Any:
        """JSON value of attribute `spec` for entity `i` (global index)."""
        return json_value(spec, self.attrs[type_name][spec.name][i - self.offsets[type_name]])

    def entity_attrs(self, i: int) -> dict[str, Any]:
        t = self.schema.entity_types[int(self.types[i])]
        return {a.name: self.attr_value(a, t.name, i) for a in t.attributes}


def json_value(spec: AttributeSpec, v: Any) -> Any:
    """A sampled attribute value (choice index, date ordinal, number) as entities.jsonl stores it."""
    if spec.kind == "choice":
        return spec.values[int(v)]
    if spec.kind == "date":
        return dt.date.fromordinal(int(v)).isoformat()
    if spec.kind == "float":
        return round(float(v), spec.decimals)
    return int(v)


def type_counts(schema: Schema, n: int, mix: dict[str, float] | None = None) -> dict[str, int]:
    """Largest-remainder split of n entities by weight, with each type's `min_count`."""
    weights = {t.name: (mix or {}).get(t.name, t.weight) for t in schema.entity_types}
    unknown = sorted(set(mix or {}) - set(weights))
    if unknown:
        raise ValueError(f"type_mix names unknown entity type(s) {unknown}; known: {sorted(weights)}")
    total = sum(weights.values())
    if total <= 0:
        raise ValueError("the type mix gives every entity type weight 0")
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[: n - sum(counts.values())]:
        counts[k] += 1
    return {t.name: max(counts[t.name], t.min_count) for t in schema.entity_types}


def sample_attribute(spec: AttributeSpec, n: int, rng: np.random.Generator) -> np.ndarray:
    if spec.kind == "choice":
        p = np.asarray(spec.weights, float) / sum(spec.weights) if spec.weights else None
        return rng.choice(len(spec.values), size=n, p=p).astype(np.int16)
    if spec.kind == "date":
        lo, hi = dt.date(int(spec.low), 1, 1).toordinal(), dt.date(int(spec.high), 12, 31).toordinal()
        return rng.integers(lo, hi + 1, size=n)
    if spec.dist == "loguniform":
        x = np.exp(rng.uniform(np.log(spec.low), np.log(spec.high), size=n))
    else:
        x = rng.uniform(spec.low, spec.high + (1 if spec.kind != "float" else 0), size=n)
    if spec.kind == "float":
        return np.round(x, spec.decimals)
    return np.clip(np.floor(x), spec.low, spec.high).astype(np.int64)


def _constraint_mask(
    c: Constraint,
    rel: RelationSpec,
    attrs: dict[str, dict[str, np.ndarray]],
    src: np.ndarray,
    tgt: np.ndarray,
) -> np.ndarray:
    def side(s: str, a: str, off: int) -> np.ndarray:
        typ, idx = (rel.source, src) if s == "source" else (rel.target, tgt)
        return attrs[typ][a][idx] + off

    return _OPS[c.op](side(*c.left), side(*c.right))


def _rank_in_group(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stable order of `values` and each element's rank among equal values (in that order)."""
    order = np.argsort(values, kind="stable")
    sv = values[order]
    starts = np.r_[0, np.flatnonzero(sv[1:] != sv[:-1]) + 1]
    lengths = np.diff(np.r_[starts, len(sv)])
    return order, np.arange(len(sv)) - np.repeat(starts, lengths)


def _draw_other_ends(
    rel: RelationSpec,
    holders: np.ndarray,
    popularity: np.ndarray,
    cap: int,
    attrs: dict[str, dict[str, np.ndarray]],
    rng: np.random.Generator,
) -> np.ndarray:
    """Other-end local index for each holder local index (-1 = none found)."""
    other = np.full(len(holders), -1, dtype=np.int64)
    load = np.zeros(len(popularity), dtype=np.int64)
    same_type = rel.source == rel.target
    pending = np.arange(len(holders))
    for _ in range(REDRAW_ROUNDS):
        w = popularity * (load < cap)
        if len(pending) == 0 or w.sum() <= 0:
            break
        draws = rng.choice(len(popularity), size=len(pending), p=w / w.sum())
        h = holders[pending]
        src, tgt = (h, draws) if rel.holder == "source" else (draws, h)
        ok = np.ones(len(pending), dtype=bool)
        for c in rel.constraints:
            ok &= _constraint_mask(c, rel, attrs, src, tgt)
        if same_type:
            ok &= src != tgt
        cand = np.flatnonzero(ok)
        order, rank = _rank_in_group(draws[cand])
        chosen = cand[order][load[draws[cand][order]] + rank < cap]
        other[pending[chosen]] = draws[chosen]
        np.add.at(load, draws[chosen], 1)
        pending = pending[other[pending] < 0]
    return other


def _draw_partners(
    rel: RelationSpec,
    seekers: np.ndarray,
    popularity: np.ndarray,
    attrs: dict[str, dict[str, np.ndarray]],
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """A matching for a symmetric relation: the pairs as (lower, higher) local indices, sorted."""
    partner = np.full(len(popularity), -1, dtype=np.int64)
    pending = seekers
    for _ in range(REDRAW_ROUNDS):
        pending = pending[partner[pending] < 0]
        w = popularity * (partner < 0)
        if len(pending) == 0 or w.sum() <= 0:
            break
        draws = rng.choice(len(popularity), size=len(pending), p=w / w.sum())
        ok = pending != draws
        for c in rel.constraints:  # both directions: the pair is stated both ways
            ok &= _constraint_mask(c, rel, attrs, pending, draws) & _constraint_mask(
                c, rel, attrs, draws, pending
            )
        for a, b in zip(pending[ok].tolist(), draws[ok].tolist(), strict=True):
            if partner[a] < 0 and partner[b] < 0:  # first come, first paired (in seeker order)
                partner[a], partner[b] = b, a
    first = np.flatnonzero((partner >= 0) & (np.arange(len(partner)) < partner))
    return first, partner[first]


def _drop_cycles(src: np.ndarray, tgt: np.ndarray, up_is_target: bool) -> np.ndarray:
    """Keep-mask over edges (in order) so that following `up` links never returns to the start."""
    up: dict[int, int] = {}
    keep = np.ones(len(src), dtype=bool)
    for k, (s, t) in enumerate(zip(src.tolist(), tgt.tolist(), strict=True)):
        low, high = (s, t) if up_is_target else (t, s)
        node, cycle = high, False
        while node is not None:
            if node == low:
                cycle = True
                break
            node = up.get(node)
        if cycle:
            keep[k] = False
        else:
            up[low] = high
    return keep


def generate_graph(
    schema: Schema,
    seed: int,
    num_entities: int,
    zipf_exponent: float = 1.0,
    max_degree: int = 50,
    type_mix: dict[str, float] | None = None,
    step: Callable[[str], None] | None = None,
) -> Graph:
    """Generate entities and edges; the same arguments always give the same graph."""
    step = step or (lambda _: None)
    counts = type_counts(schema, num_entities, type_mix)
    width = max(6, len(str(max(counts.values()))))
    offsets, ids, names, types = {}, [], [], []
    registry = NameRegistry()
    attrs: dict[str, dict[str, np.ndarray]] = {}
    popularity: dict[str, np.ndarray] = {}
    for ti, t in enumerate(schema.entity_types):
        step(f"names and attributes: {t.name}")
        n = counts[t.name]
        offsets[t.name] = len(ids)
        ids.extend(f"{t.name}/{i:0{width}d}" for i in range(n))
        name_rng = random.Random(f"searchgym-names:{seed}:{t.name}")
        names.extend(registry.draw(t.name_style, name_rng) for _ in range(n))
        types.extend([ti] * n)
        rng = np.random.default_rng([seed, 1, ti])
        attrs[t.name] = {a.name: sample_attribute(a, n, rng) for a in t.attributes}
        popularity[t.name] = 1.0 / (rng.permutation(n) + 1.0) ** zipf_exponent

    rels, srcs, tgts = [], [], []
    for ri, r in enumerate(schema.relations):
        step(f"edges: {r.name}")
        rng = np.random.default_rng([seed, 2, ri])
        if r.symmetric:
            seekers = np.flatnonzero(rng.random(counts[r.source]) < r.coverage / 2)
            a, b = _draw_partners(r, seekers, popularity[r.source], attrs, rng)
            src = np.stack([a, b], axis=1).reshape(-1) + offsets[r.source]  # a->b, b->a, ...
            tgt = np.stack([b, a], axis=1).reshape(-1) + offsets[r.source]
            rels.append(np.full(len(src), ri, dtype=np.int16))
            srcs.append(src)
            tgts.append(tgt)
            continue
        n_holder, n_other = counts[r.holder_type], counts[r.other_type]
        holders = np.flatnonzero(rng.random(n_holder) < r.coverage)
        cap = 1 if r.cardinality == "1-1" else (r.max_degree or max_degree)
        if r.cardinality != "1-1":
            cap = max(cap, 2 * -(-len(holders) // n_other))  # never less than twice the mean load
        others = _draw_other_ends(r, holders, popularity[r.other_type], cap, attrs, rng)
        found = others >= 0
        holders, others = holders[found], others[found]
        src, tgt = (holders, others) if r.holder == "source" else (others, holders)
        src, tgt = src + offsets[r.source], tgt + offsets[r.target]
        if r.acyclic and r.source == r.target:
            keep = _drop_cycles(src, tgt, up_is_target=r.holder == "source")
            src, tgt = src[keep], tgt[keep]
        rels.append(np.full(len(src), ri, dtype=np.int16))
        srcs.append(src)
        tgts.append(tgt)
    return Graph(
        schema=schema,
        ids=ids,
        names=names,
        types=np.asarray(types, dtype=np.int16),
        offsets=offsets,
        counts=counts,
        attrs=attrs,
        rel=np.concatenate(rels) if rels else np.zeros(0, np.int16),
        src=np.concatenate(srcs) if srcs else np.zeros(0, np.int64),
        tgt=np.concatenate(tgts) if tgts else np.zeros(0, np.int64),
    )
