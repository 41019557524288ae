"""The logical forms of tasks and their interpreter, shared by task synthesis and the oracle.

A task's *logical form* (in `meta["form"]`) is a small JSON expression over the world's graph:

    {"entity": id}                                   a named entity
    {"hop": relation, "of": F}                       follow a relation from its holder to the other end
    {"find": type, "where": [C, ...]}                the entities of `type` meeting every constraint C:
        {"rel": relation, "to": F}                   its `relation` leads to F
        {"attr": name, "value": v}                   its attribute equals v
    {"attr": name, "of": F}                          the value (as articles write it) of an attribute of F
    {"compare": attr, "pick": "lower"|"higher", "of": [F, F]}

`evaluate(form, graph)` returns the set of entities (or values) the form denotes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from searchgym.tasks import templates as T


def relation_specs(schema: Any) -> dict[str, Any]:
    return {r.name: r for r in schema.relations}


def attribute_specs(schema: Any) -> dict[str, dict[str, Any]]:
    """entity type -> attribute name -> AttributeSpec."""
    return {t.name: {a.name: a for a in t.attributes} for t in schema.entity_types}


def type_nouns(schema: Any) -> dict[str, str]:
    return {t.name: t.noun or T.type_noun(t.name) for t in schema.entity_types}


class Graph:
    """Functional hops over one edge set: holder --relation--> other end.

    The verified graph (verified_only=True) holds the verified edges. The full graph holds everything the corpus
    states: every edge, verified or not, plus the claims of noise.jsonl -- planted conflicts, distractor articles
    (their near-namesakes become entities of the graph, keyed by document id) and stray statements of LLM-written
    text (`World.claims`, edge id -1). An answer unique on the full graph is unique against the whole corpus."""

    def __init__(self, world: Any, relations: dict[str, Any], verified_only: bool):
        self.hop: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        self.holders: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.out: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for e in world.edges:
            if (verified_only and not e.verified) or e.relation not in relations:
                continue
            h, o = relations[e.relation].orient(e.source, e.target)
            self.hop[(h, e.relation)].append((o, e.id))
            self.holders[(e.relation, o)].append(h)
            self.out[h].append((e.relation, o, e.id))
        self.entities = world.entities
        if not verified_only:
            for rel, h, o in world.claims:
                if rel in relations:
                    self.hop[(h, rel)].append((o, -1))
                    self.holders[(rel, o)].append(h)
            if world.distractors:
                self.entities = {**world.entities, **world.distractors}
        self.attrs = attribute_specs(world.schema)

    def sort_key(self, eid: str, attr: str) -> float | None:
        e = self.entities[eid]
        spec = self.attrs.get(e.type, {}).get(attr)
        return None if spec is None or attr not in e.attrs else spec.sort_key(e.attrs[attr])


def evaluate(form: dict[str, Any], g: Graph) -> frozenset[str]:
    """All entities the form denotes on graph `g` (attributes come from the entities themselves)."""
    if "entity" in form:
        return frozenset([form["entity"]]) if form["entity"] in g.entities else frozenset()
    if "hop" in form:
        return frozenset(o for x in evaluate(form["of"], g) for o, _ in g.hop.get((x, form["hop"]), ()))
    if "find" in form:
        found: set[str] | None = None
        for c in form["where"]:
            if "rel" in c:
                sat = {h for y in evaluate(c["to"], g) for h in g.holders.get((c["rel"], y), ())}
            else:
                pool = found if found is not None else (e.id for e in g.entities.values())
                sat = {x for x in pool if g.entities[x].attrs.get(c["attr"]) == c["value"]}
            found = sat if found is None else found & sat
        return frozenset(x for x in found or () if g.entities[x].type == form["find"])
    if "attr" in form:  # the value (as articles write it) of an attribute of the entities denoted
        out = set()
        for x in evaluate(form["of"], g):
            spec = g.attrs.get(g.entities[x].type, {}).get(form["attr"])
            if spec is not None and form["attr"] in g.entities[x].attrs:
                out.add(spec.format(g.entities[x].attrs[form["attr"]]))
        return frozenset(out)
    if "compare" in form:
        sides = [evaluate(f, g) for f in form["of"]]
        if any(len(s) != 1 for s in sides):
            return frozenset()
        (a,), (b,) = sides
        va, vb = g.sort_key(a, form["compare"]), g.sort_key(b, form["compare"])
        if a == b or va is None or vb is None or va == vb:
            return frozenset()
        low, high = (a, b) if va < vb else (b, a)
        return frozenset([low if form["pick"] == "lower" else high])
    raise ValueError(f"unknown logical form {form!r}")


def named_entities(form: Any) -> list[str]:
    """Entity ids named in the question (the `{"entity": id}` leaves), in order."""
    if isinstance(form, dict):
        if "entity" in form:
            return [form["entity"]]
        return [x for v in form.values() for x in named_entities(v)]
    if isinstance(form, list):
        return [x for v in form for x in named_entities(v)]
    return []


def form_key(form: dict[str, Any]) -> str:
    """A canonical string for a form: the order of an intersection's constraints or a comparison's operands does
    not make a different task (descriptions nested deeper are always built in one order)."""
    key = "where" if "where" in form else "of" if "compare" in form else None
    if key is None:
        return json.dumps(form, sort_keys=True)
    return json.dumps({**form, key: sorted(json.dumps(x, sort_keys=True) for x in form[key])}, sort_keys=True)
