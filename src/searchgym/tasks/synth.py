"""Task synthesis on the verified graph, with every answer re-derived symbolically.

Each task carries a *logical form* (in `meta["form"]`), a small JSON expression over the graph:

    {"entity": id}                                   a named entity
    {"hop": relation, "of": F}                       follow a relation from its holder to the other end
    {"find": type, "where": [C, ...]}                the entities of `type` meeting every constraint C:
        {"rel": relation, "to": F}                   its `relation` leads to F
        {"attr": name, "value": v}                   its attribute equals v
    {"compare": attr, "pick": "lower"|"higher", "of": [F, F]}

`evaluate(form, graph)` returns the set of answer entities. A task is kept only if that set is exactly
{answer} on the verified graph AND on the full graph (unverified edges and the claims of planted conflicting
statements included), and every evidence edge is verified. Questions come from templates (`templates.py`); splits from a hash of (start entity, relation path).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.rewards import normalize_answer
from searchgym.tasks import templates as T
from searchgym.tasks.types import EvidenceStep, Task

TYPES = ("chain", "obfuscated", "intersection", "comparison")
MAX_LEVEL = 5
# short forms people use for a name; an alias is kept only when unambiguous (see Aliases)
NAME_PREFIXES = frozenset(
    ("Dr.", "Prof.", "Sir", "Dame", "Lady", "Lord", "Mr.", "Mrs.", "Ms.", "University of")
)
NAME_SUFFIXES = frozenset(
    "Inc.|Ltd.|LLC|Corp.|Corporation|plc|Group|Holdings|Industries|Dynamics|Systems|Labs|Works|Foods|Motors|Media|"
    "Energy|Society|Foundation|Council|League|Association|Trust|Alliance|University|Institute of Technology".split(
        "|"
    )
)


@dataclass
class ParaphraseConfig(YamlConfig):
    """Optional rewrite of every question by an LLM behind an OpenAI-compatible endpoint (off by default)."""

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = (
        "OPENAI_API_KEY"  # name of the env var holding the key; empty key is fine for local servers
    )
    temperature: float = 0.7
    timeout_s: float = 30.0
    max_retries: int = 2


@dataclass
class TaskConfig(YamlConfig):
    seed: int = 0
    max_hops: int = 5  # longest chain; the issue asks for at least 5
    chain_per_hops: int = 200  # chains for each hop count 1..max_hops
    attribute_answer_fraction: float = 0.2  # share of chains whose last hop asks for an attribute value
    obfuscated: int = 300
    intersection: int = 300
    comparison: int = 300
    comparison_hop_fraction: float = (
        0.5  # share of comparisons whose operands are 1-hop descriptions (level 4)
    )
    max_anchor_candidates: int = (
        10  # an obfuscated start's anchor may hold the relation for at most this many
    )
    attempts_per_task: int = 40  # sampling attempts budget per requested task before giving up on a type
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "dev": 0.1, "test": 0.1})
    paraphrase: ParaphraseConfig = field(default_factory=ParaphraseConfig)

    def validate(self) -> None:
        if self.max_hops < 1:
            raise ConfigError(f"max_hops={self.max_hops}: must be at least 1")
        if not self.splits or any(v < 0 for v in self.splits.values()) or sum(self.splits.values()) <= 0:
            raise ConfigError(f"splits={self.splits}: give non-negative ratios with a positive sum")
        for name in ("comparison_hop_fraction", "attribute_answer_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be in [0, 1]")


def level_of(task_type: str, variant: int) -> int:
    """Difficulty level (see docs/tasks.md). `variant`: chain hops; obfuscated hops after the hidden start;
    comparison 0 = named operands, 1 = 1-hop operands; intersection: number of constraints."""
    if task_type == "chain":
        return min(variant, MAX_LEVEL)
    if task_type == "obfuscated":
        return min(2 + variant, MAX_LEVEL)
    if task_type == "intersection":
        return min(1 + variant, MAX_LEVEL)
    if task_type == "comparison":
        return 3 + variant
    raise ValueError(f"unknown task type {task_type!r}; known: {TYPES}")


# ---------------------------------------------------------------- schema access


def relation_specs(schema: Any) -> dict[str, Any]:
    return {r.name: r for r in schema.relations}


def attribute_specs(schema: Any) -> dict[str, dict[str, Any]]:
    """entity type -> attribute name -> AttributeSpec."""
    return {t.name: {a.name: a for a in t.attributes} for t in schema.entity_types}


def type_nouns(schema: Any) -> dict[str, str]:
    return {t.name: t.noun or T.type_noun(t.name) for t in schema.entity_types}


# ---------------------------------------------------------------- graph and evaluation


class Graph:
    """Functional hops over one edge set: holder --relation--> other end. The full graph (verified_only=False)
    also holds the claims of the corpus's conflicting statements (noise.jsonl, edge id -1)."""

    def __init__(self, world: Any, relations: dict[str, Any], verified_only: bool):
        self.hop: dict[tuple[str, str], list[tuple[str, int]]] = defaultdict(list)
        self.holders: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.out: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        target_holds = {n for n, s in relations.items() if s.holder == "target"}
        for e in world.edges:
            if (verified_only and not e.verified) or e.relation not in relations:
                continue
            h, o = (e.target, e.source) if e.relation in target_holds else (e.source, e.target)
            self.hop[(h, e.relation)].append((o, e.id))
            self.holders[(e.relation, o)].append(h)
            self.out[h].append((e.relation, o, e.id))
        if not verified_only:  # a conflicting statement planted in the corpus counts as a claimed edge too
            by_id = {e.id: e for e in world.edges}
            for rec in getattr(world, "noise", ()):
                e = by_id.get(rec.get("edge")) if rec.get("kind") == "conflict" else None
                if e is None or e.relation not in relations or rec["doc"] not in world.entities:
                    continue
                h = e.target if e.relation in target_holds else e.source
                self.hop[(h, e.relation)].append((rec["doc"], -1))
                self.holders[(e.relation, rec["doc"])].append(h)
        self.entities = world.entities
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


# ---------------------------------------------------------------- aliases


def value_aliases(spec: Any, value_text: str) -> tuple[str, ...]:
    """Other surface forms of an attribute value: without its unit; dates also as "April 5, 1923" and ISO."""
    out = []
    text = (
        value_text[: -len(spec.unit) - 1]
        if spec.unit and value_text.endswith(" " + spec.unit)
        else value_text
    )
    if text != value_text:
        out.append(text)
    if spec.kind == "date":
        d = dt.datetime.strptime(text, "%d %B %Y").date()
        out += [f"{d.strftime('%B')} {d.day}, {d.year}", d.isoformat()]
    return tuple(out)


def _strip_affixes(name: str) -> list[str]:
    words = name.split()
    out = []
    for n in (1, 2):  # every listed prefix / suffix has one or two words
        if len(words) > n and " ".join(words[:n]) in NAME_PREFIXES:
            out.append(" ".join(words[n:]))
        if len(words) > n and " ".join(words[-n:]) in NAME_SUFFIXES:
            out.append(" ".join(words[:-n]).rstrip(","))
    return out


_NOT_WORD = re.compile(r"[^\w\s]")
_ARTICLE = re.compile(r"\b(a|an|the)\b")


def fold(text: str) -> str:
    """A fast form of the reward's `normalize_answer` (identical on ASCII names): case, punctuation, articles."""
    return " ".join(_ARTICLE.sub(" ", _NOT_WORD.sub("", text.casefold())).split())


class Aliases:
    """Short forms ("Drailbron" for "Drailbron Group") that cannot be confused with another entity: the alias is
    nobody else's name or alias, and does not occur (at word boundaries) inside any other entity's name.
    Computed on demand for answer entities; the indexes over all names are built once."""

    def __init__(self, entities: dict[str, Any]):
        self.entities = entities
        self.by_token: dict[str, set[str]] = defaultdict(set)
        self.owners: dict[str, set[str]] = defaultdict(set)
        for eid, e in entities.items():
            for tok in set(fold(e.name).split()):
                self.by_token[tok].add(eid)
            for a in _strip_affixes(e.name):
                self.owners[fold(a)].add(eid)
        self.cache: dict[str, tuple[str, ...]] = {}

    def _ok(self, eid: str, alias: str) -> bool:
        a = fold(alias)
        if len(a) < 3 or self.owners[a] != {eid} or normalize_answer(alias) != a:
            return False
        others = set.intersection(*(self.by_token.get(t, set()) for t in a.split())) - {eid}
        return all(f" {a} " not in f" {fold(self.entities[o].name)} " for o in others)

    def get(self, eid: str) -> tuple[str, ...]:
        if eid not in self.cache:
            self.cache[eid] = tuple(a for a in _strip_affixes(self.entities[eid].name) if self._ok(eid, a))
        return self.cache[eid]


# ---------------------------------------------------------------- synthesis


@dataclass
class Draft:
    """A candidate task before checks: its form, question, answer entity and evidence."""

    type: str
    variant: int
    form: dict[str, Any]
    question: str
    answer: str  # entity id
    evidence: list[EvidenceStep]
    values: list[str] = field(default_factory=list)  # attribute value texts quoted in the question
    value: str | None = None  # the answer when it is an attribute value of the `answer` entity

    def __post_init__(self) -> None:
        self.question = T.tidy(self.question)


class Synthesizer:
    def __init__(self, world: Any, cfg: TaskConfig):
        self.world, self.cfg = world, cfg
        self.rel = {n: s for n, s in relation_specs(world.schema).items() if s.questions and s.descriptors}
        self.attrs = attribute_specs(world.schema)
        self.nouns = type_nouns(world.schema)
        self.gv = Graph(world, self.rel, verified_only=True)
        self.gf = Graph(world, self.rel, verified_only=False)
        self.aliases = Aliases(world.entities)
        # relations whose holder phrasing turns into a relative clause (usable in descriptions)
        self.clausal = {n for n, s in self.rel.items() if T.relation_clause(s, s.holder_type, "") is not None}
        self._url: dict[str, str] = {}
        # reach[k] = holders from which some verified walk of k hops starts (revisits ignored here)
        self.reach: list[set[str]] = [set(world.entities)]
        for k in range(cfg.max_hops):
            prev = self.reach[-1]
            pool = self.gv.out if k == 0 else self.reach[-1]  # reach[k + 1] is a subset of reach[k]
            self.reach.append({h for h in pool if any(o in prev for _, o, _ in self.gv.out.get(h, ()))})
        self.starts = [sorted(r) for r in self.reach]
        self.comparable = [
            (t, a)
            for t, specs in sorted(self.attrs.items())
            for a, s in sorted(specs.items())
            if getattr(s, "comparatives", None)
        ]
        self.into_type: dict[str, list[tuple[str, str, str, int]]] = defaultdict(list)
        for h in sorted(self.gv.out):
            for r, o, e in self.gv.out[h]:
                self.into_type[world.entities[o].type].append((h, r, o, e))
        self.by_type: dict[str, list[str]] = defaultdict(list)
        for eid in sorted(world.entities):
            self.by_type[world.entities[eid].type].append(eid)

    # -- helpers
    def name(self, eid: str) -> str:
        return self.world.entities[eid].name

    def url(self, eid: str) -> str:
        if eid not in self._url:
            self._url[eid] = self.world.doc_of(eid).url
        return self._url[eid]

    def step(self, eid: str, rel: str | None = None, edge: int | None = None, attr: str | None = None):
        return EvidenceStep(entity=eid, url=self.url(eid), edge=edge, relation=rel, attribute=attr)

    def walk(
        self, rng: random.Random, start: str, k: int, avoid: set[str]
    ) -> list[tuple[str, str, int]] | None:
        """k verified hops from `start` visiting no entity twice (and none in `avoid`)."""
        seen, cur, hops = {start, *avoid}, start, []
        for left in range(k, 0, -1):
            opts = [x for x in self.gv.out.get(cur, ()) if x[1] not in seen and x[1] in self.reach[left - 1]]
            if not opts:
                return None
            r, o, e = rng.choice(opts)
            hops.append((r, o, e))
            seen.add(o)
            cur = o
        return hops

    def chain_form(self, start_form: dict[str, Any], hops: list[tuple[str, str, int]]) -> dict[str, Any]:
        form = start_form
        for r, _, _ in hops:
            form = {"hop": r, "of": form}
        return form

    def chain_text(self, start_text: str, hops: list[tuple[str, str, int]], rng: random.Random) -> str:
        rels = [self.rel[r] for r, _, _ in hops]
        return T.chain_question(start_text, [s.descriptors for s in rels], rels[-1].questions, rng)

    def hop_steps(self, start: str, hops: list[tuple[str, str, int]]) -> list[EvidenceStep]:
        holders = ([start] + [o for _, o, _ in hops])[: len(hops)]
        return [self.step(h, r, e) for h, (r, _, e) in zip(holders, hops, strict=True)]

    # -- the four task types
    def chain(self, rng: random.Random, k: int) -> Draft | None:
        if not self.starts[k]:
            return None
        if rng.random() < self.cfg.attribute_answer_fraction:
            return self.attribute_chain(rng, k)
        start = rng.choice(self.starts[k])
        hops = self.walk(rng, start, k, set())
        if hops is None:
            return None
        q = self.chain_text(self.name(start), hops, rng)
        form = self.chain_form({"entity": start}, hops)
        return Draft("chain", k, form, q, hops[-1][1], self.hop_steps(start, hops))

    def attribute_chain(self, rng: random.Random, k: int) -> Draft | None:
        """k - 1 hops, then ask for an attribute of the entity reached (the answer is a value)."""
        if not self.starts[k - 1]:
            return None
        start = rng.choice(self.starts[k - 1])
        hops = self.walk(rng, start, k - 1, set())
        if hops is None:
            return None
        end = hops[-1][1] if hops else start
        ent = self.world.entities[end]
        specs = self.attrs.get(ent.type, {})
        asked = [a for a in sorted(ent.attrs) if a in specs and specs[a].questions]
        if not asked:
            return None
        a = rng.choice(asked)
        spec = specs[a]
        rels = [self.rel[r] for r, _, _ in hops]
        desc = T.chain_description(self.name(start), [s.descriptors for s in rels], rng)
        q = rng.choice(spec.questions).format(x=desc)
        form = {"attr": a, "of": self.chain_form({"entity": start}, hops)}
        evidence = self.hop_steps(start, hops) + [self.step(end, attr=a)]
        return Draft("chain", k, form, q, end, evidence, value=spec.format(ent.attrs[a]))

    def hidden_start(self, rng: random.Random, x: str) -> tuple[dict[str, Any], str, list, list[str]] | None:
        """Describe x by one relation to a named anchor plus one attribute, unique on the full graph."""
        ent = self.world.entities[x]
        rels = [
            (r, o, e) for r, o, e in self.gv.out.get(x, ()) if T.relation_clause(self.rel[r], ent.type, "")
        ]
        attrs = [a for a in sorted(ent.attrs) if a in self.attrs.get(ent.type, {})]
        if not rels or not attrs:
            return None
        r, anchor, e = rng.choice(rels)
        pool = self.gf.holders[(r, anchor)]  # all of the relation's holder type
        if len(pool) > self.cfg.max_anchor_candidates:
            return None
        a = rng.choice(attrs)
        v = ent.attrs[a]
        if any(h != x and self.world.entities[h].attrs.get(a) == v for h in pool):
            return None
        spec = self.attrs[ent.type][a]
        vt = spec.format(v)
        c1 = T.relation_clause(self.rel[r], ent.type, self.name(anchor))
        text = T.obfuscated_description(self.nouns[ent.type], c1, T.attribute_clause(spec, vt), rng)
        form = {"find": ent.type, "where": [{"rel": r, "to": {"entity": anchor}}, {"attr": a, "value": v}]}
        return form, text, [self.step(x, r, e), self.step(x, attr=a)], [vt]

    def obfuscated(self, rng: random.Random, k: int) -> Draft | None:
        if not self.starts[k]:
            return None
        x = rng.choice(self.starts[k])
        hidden = self.hidden_start(rng, x)
        if hidden is None:
            return None
        form0, text, steps, values = hidden
        hops = self.walk(rng, x, k, {form0["where"][0]["to"]["entity"]})
        if hops is None:
            return None
        q = self.chain_text(text, hops, rng)
        form = self.chain_form(form0, hops)
        return Draft("obfuscated", k, form, q, hops[-1][1], steps + self.hop_steps(x, hops), values)

    def intersection(self, rng: random.Random, _: int) -> Draft | None:
        if not self.starts[1]:
            return None
        x = rng.choice(self.starts[1])
        ent = self.world.entities[x]
        opts = [(r, o, e) for r, o, e in self.gv.out[x] if r in self.clausal]
        if len(opts) < 2:
            return None
        (r1, a, e1), (r2, b, e2) = rng.sample(opts, 2)
        if a == b:
            return None
        c1 = T.relation_clause(self.rel[r1], ent.type, self.name(a))
        c2 = T.relation_clause(self.rel[r2], ent.type, self.name(b))
        q = T.intersection_question(self.nouns[ent.type], c1, c2, rng)
        form = {
            "find": ent.type,
            "where": [{"rel": r1, "to": {"entity": a}}, {"rel": r2, "to": {"entity": b}}],
        }
        return Draft("intersection", 2, form, q, x, [self.step(x, r1, e1), self.step(x, r2, e2)])

    def comparison(self, rng: random.Random, with_hops: int) -> Draft | None:
        if not self.comparable:
            return None
        etype, attr = rng.choice(self.comparable)
        spec = self.attrs[etype][attr]
        operands: list[tuple[dict[str, Any], str, str, list[EvidenceStep]]] = []
        if with_hops:
            into = self.into_type.get(etype)
            for _ in range(2 if into else 0):
                h, r, o, e = rng.choice(into)
                d = rng.choice(self.rel[r].descriptors).format(x=self.name(h))
                operands.append(({"hop": r, "of": {"entity": h}}, d, o, [self.step(h, r, e)]))
        else:
            for o in rng.sample(self.by_type[etype], 2) if len(self.by_type[etype]) > 1 else ():
                operands.append(({"entity": o}, self.name(o), o, []))
        if len(operands) != 2 or operands[0][2] == operands[1][2]:
            return None
        (fa, ta, a, sa), (fb, tb, b, sb) = operands
        va, vb = self.gv.sort_key(a, attr), self.gv.sort_key(b, attr)
        if va is None or vb is None or va == vb:
            return None
        pick = rng.choice(("lower", "higher"))
        word = spec.comparatives[0 if pick == "lower" else 1]
        q = T.comparison_question(self.nouns[etype], spec.noun, word, ta, tb, rng)
        form = {"compare": attr, "pick": pick, "of": [fa, fb]}
        answer = (a if va < vb else b) if pick == "lower" else (b if va < vb else a)
        evidence = sa + [self.step(a, attr=attr)] + sb + [self.step(b, attr=attr)]
        return Draft("comparison", with_hops, form, q, answer, evidence)

    # -- checks and assembly
    def check(self, d: Draft) -> bool:
        """Unique answer on the verified and the full graph, verified evidence, answer not given away."""
        gold = {d.value if d.value is not None else d.answer}
        if evaluate(d.form, self.gv) != gold or evaluate(d.form, self.gf) != gold:
            return False
        for s in d.evidence:
            if s.edge is not None and all(
                e != s.edge for _, e in self.gv.hop.get((s.entity, s.relation), ())
            ):
                return False
        if d.type == "comparison":  # the answer is one of the two options by design
            return True
        return (d.value or self.name(d.answer)).casefold() not in d.question.casefold()

    def attr_of(self, d: Draft) -> Any:
        return self.attrs[self.world.entities[d.answer].type][d.form["attr"]]

    def finish(self, d: Draft) -> Task:
        # every task starting at the same entity shares a split, so no (start entity, relation path) and no
        # question can appear in two splits
        split_key = d.evidence[0].entity
        digest = hashlib.sha256(f"{d.type}|{d.question}".encode()).hexdigest()[:12]
        return Task(
            id=f"{d.type}-{digest}",
            question=d.question,
            answer=d.value if d.value is not None else self.name(d.answer),
            aliases=self.aliases.get(d.answer)
            if d.value is None
            else value_aliases(self.attr_of(d), d.value),
            type=d.type,
            hops=len(d.evidence),
            level=level_of(d.type, d.variant),
            split=assign_split(split_key, self.cfg.seed, self.cfg.splits),
            evidence=tuple(d.evidence),
            meta={
                "form": d.form,
                "answer_entity": d.answer,
                "answer_attribute": d.form["attr"] if d.value is not None else None,
                "named": named_entities(d.form),
                "values": d.values,
                "split_key": split_key,
            },
        )

    def plan(self) -> Iterator[tuple[str, Callable[[random.Random, int], Draft | None], int, int]]:
        """(label, builder, variant, count) for every slice of the requested mix."""
        c = self.cfg
        for k in range(1, c.max_hops + 1):
            yield f"chain/{k}", self.chain, k, c.chain_per_hops
        per_k = _spread(c.obfuscated, max(c.max_hops - 1, 1))
        for k, n in enumerate(per_k, 1):
            yield f"obfuscated/{k}", self.obfuscated, k, n
        yield "intersection", self.intersection, 2, c.intersection
        hop_n = round(c.comparison * c.comparison_hop_fraction)
        yield "comparison/named", self.comparison, 0, c.comparison - hop_n
        yield "comparison/hop", self.comparison, 1, hop_n


def form_key(form: dict[str, Any]) -> str:
    """A canonical string for a form: the order of an intersection's constraints or a comparison's operands does
    not make a different task (descriptions nested deeper are always built in one order)."""
    key = "where" if "where" in form else "of" if "compare" in form else None
    if key is None:
        return json.dumps(form, sort_keys=True)
    return json.dumps({**form, key: sorted(json.dumps(x, sort_keys=True) for x in form[key])}, sort_keys=True)


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def assign_split(key: str, seed: int, ratios: dict[str, float]) -> str:
    """Deterministic split from a hash of the key: the same key always lands in the same split."""
    u = int(hashlib.sha256(f"{seed}|{key}".encode()).hexdigest()[:15], 16) / 16**15
    total, acc = sum(ratios.values()), 0.0
    for name, r in ratios.items():
        acc += r / total
        if u < acc:
            return name
    return list(ratios)[-1]


def build_tasks(world: Any, cfg: TaskConfig, progress: bool = True) -> list[Task]:
    """Synthesize the configured mix of tasks on `world`'s verified graph (deterministic in cfg.seed)."""
    return synthesize(world, cfg, progress)[0]


def synthesize(world: Any, cfg: TaskConfig, progress: bool = True) -> tuple[list[Task], dict[str, int]]:
    """`build_tasks`, plus the shortfall per slice (label -> tasks requested but not found in the budget)."""
    cfg.validate()
    if not any(e.verified for e in world.edges):
        raise ValueError(
            f"{world.path}: the world has no verified edges (built with --no-verify?); tasks use verified edges only. "
            "Rebuild it with verification: searchgym world build OUT --overwrite"
        )
    syn = Synthesizer(world, cfg)
    slices = list(syn.plan())
    tasks: list[Task] = []
    seen_q: set[str] = set()
    seen_form: set[str] = set()
    shortfall: dict[str, int] = {}
    with _progress(progress, sum(n for *_, n in slices)) as advance:
        for label, builder, variant, count in slices:
            rng = random.Random(f"{cfg.seed}/{label}")
            made = 0
            for _ in range(count * cfg.attempts_per_task):
                if made >= count:
                    break
                d = builder(rng, variant)
                if d is None:
                    continue
                fkey = form_key(d.form)
                qkey = d.question.casefold()
                if fkey in seen_form or qkey in seen_q or not syn.check(d):
                    continue
                seen_form.add(fkey)
                seen_q.add(qkey)
                tasks.append(syn.finish(d))
                made += 1
                advance()
            if made < count:
                shortfall[label] = count - made
    if cfg.paraphrase.enabled:
        from searchgym.tasks.paraphrase import paraphrase_tasks

        tasks = paraphrase_tasks(tasks, world, cfg.paraphrase, progress=progress)
    return tasks, shortfall


class _progress:
    """A rich progress bar (or nothing) with an `advance()` callable."""

    def __init__(self, show: bool, total: int):
        self.show, self.total = show, total

    def __enter__(self) -> Callable[[], None]:
        if not self.show:
            return lambda: None
        from rich.progress import Progress

        self.bar = Progress(transient=True)
        self.bar.__enter__()
        tid = self.bar.add_task("synthesizing tasks", total=self.total)
        return lambda: self.bar.advance(tid)

    def __exit__(self, *exc: Any) -> None:
        if self.show:
            self.bar.__exit__(*exc)
