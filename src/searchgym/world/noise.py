"""Noise for robustness studies (off by default), recorded in noise.jsonl so tasks never depend on it.

- distractors: articles about near-namesakes of real entities (one letter changed), with their own made-up facts
  (never 1-1 or symmetric relations, whose other end has a unique partner too); `Document.entity` is None. The row
  records the distractor's name, type, attributes and claims, so tasks can check uniqueness against them.
- conflicts: for a fraction of edges, a sentence with the holder phrasing but a wrong other end is added to the
  wrong entity's article; verification marks the edges it contradicts "contradicted".
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from searchgym.config import ConfigError, YamlConfig
from searchgym.world.corpus import ArticleWriter, url_for
from searchgym.world.generate import json_value, sample_attribute
from searchgym.world.names import NameRegistry
from searchgym.world.wording import fill

_VOWELS = "aeiou"


@dataclass
class NoiseConfig(YamlConfig):
    distractor_rate: float = 0.0  # distractor articles per entity
    conflict_rate: float = 0.0  # fraction of edges that get a conflicting statement elsewhere

    def validate(self) -> None:
        # at most one distractor per entity and one conflict per edge
        for key in ("distractor_rate", "conflict_rate"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"noise.{key}={getattr(self, key)}: must be in [0, 1]")


@dataclass
class NoisePlan:
    extra: dict[int, list[str]] = field(default_factory=dict)  # entity index -> sentences for its article
    distractors: list[dict[str, Any]] = field(default_factory=list)  # Document rows
    records: list[dict[str, Any]] = field(default_factory=list)  # noise.jsonl rows


def _near_namesake(name: str, rng: random.Random) -> str:
    chars = list(name)
    spots = [k for k, c in enumerate(chars) if c.lower() in _VOWELS and k > 0]
    k = rng.choice(spots) if spots else len(chars) - 1
    chars[k] = rng.choice([v for v in _VOWELS if v != chars[k].lower()])
    return "".join(chars)


def plan_noise(writer: ArticleWriter, cfg: NoiseConfig, seed: int) -> NoisePlan:
    g, schema = writer.g, writer.g.schema
    plan = NoisePlan()
    rng = np.random.default_rng([seed, 4])
    n_edges = len(writer.rel_list)
    n_conflicts = min(n_edges, round(cfg.conflict_rate * n_edges))
    for e in sorted(rng.choice(n_edges, size=n_conflicts, replace=False).tolist()):
        r = schema.relations[writer.rel_list[e]]
        start, true_other = g.offsets[r.other_type], int(writer.other[e])
        n = g.counts[r.other_type]
        if n < 2:
            continue
        wrong = start + (true_other - start + int(rng.integers(1, n))) % n
        holder = g.names[int(writer.holder[e])]
        src, tgt = r.orient(holder, g.names[wrong])
        sentence = fill(r.phrasings[int(rng.integers(len(r.phrasings)))], source=src, target=tgt)
        plan.extra.setdefault(wrong, []).append(sentence)
        plan.records.append({"kind": "conflict", "edge": e, "doc": g.ids[wrong], "sentence": sentence})

    n_distractors = round(cfg.distractor_rate * len(g.ids))
    if n_distractors == 0:
        return plan
    registry = NameRegistry()
    for name in g.names:
        registry.claim(name)
    name_rng = random.Random(f"searchgym-distractors:{seed}")
    for k, base in enumerate(sorted(rng.choice(len(g.ids), size=n_distractors, replace=False).tolist())):
        name = next(
            (c for c in (_near_namesake(g.names[base], name_rng) for _ in range(50)) if registry.claim(c)),
            None,
        )
        if name is None:
            continue
        spec = schema.entity_types[int(g.types[base])]
        doc_id = f"distractor/{k:06d}"
        values = {a.name: json_value(a, sample_attribute(a, 1, rng)[0]) for a in spec.attributes}
        shown = {a.name: a.format(values[a.name]) for a in spec.attributes}
        lead = fill(spec.lead[int(rng.integers(len(spec.lead)))], name=name, **shown)
        body = [fill(a.phrasings[0], name=name, value=shown[a.name]) for a in spec.attributes]
        claims = []
        for r in schema.relations:
            if r.holder_type != spec.name or r.one_holder_per_other or rng.random() < 0.5:
                continue  # a 1-1 or symmetric claim would contradict the real other end's unique partner
            other = g.offsets[r.other_type] + int(rng.integers(g.counts[r.other_type]))
            src, tgt = r.orient(name, g.names[other])
            body.append(fill(r.phrasings[int(rng.integers(len(r.phrasings)))], source=src, target=tgt))
            src_id, tgt_id = r.orient(doc_id, g.ids[other])
            claims.append({"relation": r.name, "source": src_id, "target": tgt_id})
        text = f"{lead}\n\n## {spec.section}\n" + " ".join(body)
        plan.distractors.append(
            {"id": doc_id, "url": url_for(name), "title": name, "text": text, "entity": None}
        )
        plan.records.append(
            {
                "kind": "distractor",
                "edge": None,
                "doc": doc_id,
                "sentence": lead,
                "name": name,
                "type": spec.name,
                "attrs": values,
                "claims": claims,
            }
        )
    return plan
