"""Task synthesis on the verified graph, with every answer re-derived symbolically.

Each task carries a logical form (`searchgym.tasks.forms`). A task is kept only if `evaluate(form)` is exactly
{answer} on the verified graph AND on the full graph (everything the corpus states: every edge, planted conflicts,
distractor articles, stray LLM statements), a hidden start is unique on the full graph too, and every evidence edge
is verified. Rejections are counted by reason and relation. Questions come from templates (`templates.py`);
splits from `splits.py`.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from searchgym.tasks import templates as T
from searchgym.tasks.aliases import Aliases, value_aliases
from searchgym.tasks.config import TaskConfig, level_of
from searchgym.tasks.forms import (
    Graph,
    attribute_specs,
    evaluate,
    form_key,
    named_entities,
    relation_specs,
    type_nouns,
)
from searchgym.tasks.splits import assign_split, entity_disjoint, leakage
from searchgym.types import EvidenceStep, Task

REJECTIONS = (
    "duplicate form",
    "duplicate question",
    "hidden start not unique",
    "not unique on the verified graph",
    "second answer in the corpus",
    "evidence edge unverified",
    "answer in the question",
)


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
        self.aliases = Aliases(self.gf.entities)  # distractors' names too: an alias must clash with no title
        self.rejected: Counter[tuple[str, str]] = Counter()  # (reason, relation) -> drafts involving it
        self.drafts_rejected: Counter[str] = Counter()  # reason -> drafts (each counted once)
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
            self._url[eid] = self.world.url_of(eid)
        return self._url[eid]

    def noun(self, eid: str) -> str:
        return self.nouns[self.world.entities[eid].type]

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

    def chain_text(
        self, start: T.Phrase, start_id: str, hops: list[tuple[str, str, int]], rng: random.Random
    ) -> str:
        rels = [self.rel[r] for r, _, _ in hops]
        nouns = [self.noun(start_id)] + [self.noun(o) for _, o, _ in hops]
        answer_type = self.world.entities[hops[-1][1]].type
        return T.chain_question(
            start, [s.descriptors for s in rels], rels[-1].questions, nouns, answer_type, rng
        )

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
        q = self.chain_text(T.Phrase(self.name(start), False), start, hops, rng)
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
        nouns = [self.noun(start)] + [self.noun(o) for _, o, _ in hops]
        q = T.ask(
            T.Phrase(self.name(start), False), [s.descriptors for s in rels], list(spec.questions), nouns, rng
        )
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
        pool = self.gf.holders[
            (r, anchor)
        ]  # everyone the corpus says holds r to the anchor (distractors too)
        if len(pool) > self.cfg.max_anchor_candidates:
            return None
        a = rng.choice(attrs)
        v = ent.attrs[a]
        if any(h != x and self.gf.entities[h].attrs.get(a) == v for h in pool):
            self.rejected[("hidden start not unique", r)] += 1
            self.drafts_rejected["hidden start not unique"] += 1
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
        q = self.chain_text(T.Phrase(text, True), x, hops, rng)
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
        q = T.intersection_question(ent.type, self.nouns[ent.type], c1, c2, rng)
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
        return self.problem(d) is None

    def problem(self, d: Draft) -> str | None:
        """Why the draft is rejected (a REJECTIONS entry), or None."""
        gold = {d.value if d.value is not None else d.answer}
        if d.type == "obfuscated":
            start = d.form
            while "find" not in start:
                start = start["of"]
            if evaluate(start, self.gf) != {d.evidence[0].entity}:
                return "hidden start not unique"
        if evaluate(d.form, self.gv) != gold:
            return "not unique on the verified graph"
        if evaluate(d.form, self.gf) != gold:
            return "second answer in the corpus"
        for s in d.evidence:
            if s.edge is not None and all(
                e != s.edge for _, e in self.gv.hop.get((s.entity, s.relation), ())
            ):
                return "evidence edge unverified"
        if d.type == "comparison":  # the answer is one of the two options by design
            return None
        if (d.value or self.name(d.answer)).casefold() in d.question.casefold():
            return "answer in the question"
        return None

    def reject(self, d: Draft, reason: str) -> None:
        self.drafts_rejected[reason] += 1
        for rel in sorted(_relations(d.form)) or ["-"]:
            self.rejected[(reason, rel)] += 1

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
            split=assign_split(split_key, self.cfg.seed, self.cfg.splits),  # re-split later in "entity" mode
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


def _spread(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _relations(form: Any) -> set[str]:
    if isinstance(form, dict):
        own = {form[k] for k in ("hop", "rel") if k in form}
        return own.union(*(_relations(v) for v in form.values()))
    if isinstance(form, list):
        return set().union(*(_relations(v) for v in form))
    return set()


@dataclass
class Synthesis:
    """What `synthesize` produced and why it did not produce more."""

    tasks: list[Task]
    shortfall: dict[str, int]  # slice label -> tasks requested but not found in the budget
    rejected: dict[str, dict[str, int]]  # reason -> relation -> rejected drafts involving that relation
    split: dict[str, Any]  # mode, tasks dropped by the entity-disjoint split, leakage per held-out split
    drafts_rejected: dict[str, int] = field(default_factory=dict)  # reason -> drafts, each counted once

    def report(self) -> dict[str, Any]:
        """The task set manifest's record of this synthesis."""
        totals = dict(self.drafts_rejected)
        return {
            "shortfall": self.shortfall,
            "rejected": {"total": totals, "by_relation": self.rejected},
            "split": self.split,
        }


def build_tasks(world: Any, cfg: TaskConfig, progress: bool = True) -> list[Task]:
    """Synthesize the configured mix of tasks on `world`'s verified graph (deterministic in cfg.seed)."""
    return synthesize(world, cfg, progress).tasks


def synthesize(world: Any, cfg: TaskConfig, progress: bool = True) -> Synthesis:
    """`build_tasks`, plus the shortfall per slice, the rejections and the split report."""
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
                reason = (
                    "duplicate form"
                    if fkey in seen_form
                    else "duplicate question"
                    if qkey in seen_q
                    else syn.problem(d)
                )
                if reason is not None:
                    syn.reject(d, reason)
                    continue
                seen_form.add(fkey)
                seen_q.add(qkey)
                tasks.append(syn.finish(d))
                made += 1
                advance()
            if made < count:
                shortfall[label] = count - made
    split: dict[str, Any] = {"mode": cfg.split_mode, "dropped": 0}
    if cfg.split_mode == "entity":
        tasks, split["dropped"] = entity_disjoint(tasks, cfg.seed, cfg.splits)
    split["leakage"] = leakage(tasks)
    if cfg.paraphrase.enabled:
        from searchgym.tasks.paraphrase import paraphrase_tasks

        tasks = paraphrase_tasks(tasks, world, cfg.paraphrase, progress=progress)
    rejected: dict[str, dict[str, int]] = {}
    for (reason, rel), n in sorted(syn.rejected.items()):
        rejected.setdefault(reason, {})[rel] = n
    return Synthesis(tasks, shortfall, rejected, split, dict(sorted(syn.drafts_rejected.items())))


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
