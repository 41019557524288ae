"""The article writer: one Wikipedia-style article per entity, aligned with the graph.

An article is a lead sentence, an infobox-like "Summary" block, sections stating every attribute and every edge
the entity holds (the holder phrasing, naming the other end exactly) and a "Connections" section mentioning the
edges it is the other end of. Phrasings are chosen per edge / per entity from the seed, so a fact's wording differs
across articles and finding it takes a real query. `fact_sentence` is the single source of an edge's holder
sentence: the article states it verbatim and facts.jsonl records it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from searchgym.world.generate import Graph
from searchgym.world.names import name_key
from searchgym.world.rows import corpus_line
from searchgym.world.wording import fill

URL_PREFIX = "https://searchgym.local/wiki/"


def url_for(name: str) -> str:
    """Stable, unique URL (names are unique after folding, and the slug is the folded name)."""
    return URL_PREFIX + "_".join(name_key(name).split())


class ArticleWriter:
    def __init__(self, graph: Graph, seed: int):
        self.g = graph
        n, e = len(graph.ids), len(graph.rel)
        rng = np.random.default_rng([seed, 3])
        self.edge_choice = rng.integers(0, 1 << 30, size=e).tolist()
        self.other_choice = rng.integers(0, 1 << 30, size=e).tolist()
        max_attrs = max((len(t.attributes) for t in graph.schema.entity_types), default=0)
        self.entity_choice = rng.integers(0, 1 << 30, size=(n, max_attrs + 1), dtype=np.int64)
        holder_is_target = np.array([r.holder == "target" for r in graph.schema.relations], dtype=bool)
        flip = holder_is_target[graph.rel] if e else np.zeros(0, bool)
        self.holder = np.where(flip, graph.tgt, graph.src)
        self.other = np.where(flip, graph.src, graph.tgt)
        self.held_ptr, self.held_edges = _csr(self.holder, n)
        mentioned = np.array([not r.symmetric for r in graph.schema.relations], dtype=bool)
        keep = mentioned[graph.rel] if e else np.zeros(0, bool)
        other_ptr, other_edges = _csr(np.where(keep, self.other, n), n + 1)
        self.other_ptr, self.other_edges = other_ptr[: n + 1], other_edges
        self.rel_list = graph.rel.tolist()
        self.src_list = graph.src.tolist()
        self.tgt_list = graph.tgt.tolist()

        self._sentences: list[str] | None = None

    @property
    def sentences(self) -> list[str]:
        """Every edge's holder sentence, by edge id (computed once: facts.jsonl and articles share them)."""
        if self._sentences is None:
            names, rels = self.g.names, self.g.schema.relations
            self._sentences = [
                fill(rels[r].phrasings[c % len(rels[r].phrasings)], source=names[s], target=names[t])
                for r, s, t, c in zip(
                    self.rel_list, self.src_list, self.tgt_list, self.edge_choice, strict=True
                )
            ]
        return self._sentences

    def fact_sentence(self, edge: int) -> str:
        return self.sentences[edge]

    def mention_sentence(self, edge: int) -> str:
        r = self.g.schema.relations[self.rel_list[edge]]
        s, t = self.g.names[self.src_list[edge]], self.g.names[self.tgt_list[edge]]
        return fill(r.other_phrasings[self.other_choice[edge] % len(r.other_phrasings)], source=s, target=t)

    def article_text(self, i: int, extra: list[str] | None = None) -> tuple[str, list[int]]:
        """Entity i's article text, and the held edges whose sentence it states naming the other end
        (verification's grounded check, done while the text is at hand)."""
        g, schema = self.g, self.g.schema
        spec = schema.entity_types[int(g.types[i])]
        name = g.names[i]
        choice = self.entity_choice[i].tolist()
        values = g.entity_attrs(i)
        shown = {a.name: a.format(values[a.name]) for a in spec.attributes}
        lead = fill(spec.lead[choice[0] % len(spec.lead)], name=name, **shown)
        box = [f"Type: {spec.noun.capitalize()}"]
        box += [f"{a.noun[:1].upper()}{a.noun[1:]}: {shown[a.name]}" for a in spec.attributes]
        sections: dict[str, list[str]] = {title: [] for title in spec.sections}
        for k, a in enumerate(spec.attributes):
            sentence = fill(a.phrasings[choice[k + 1] % len(a.phrasings)], name=name, value=shown[a.name])
            sections.setdefault(a.section or spec.section, []).append(sentence)
        held = self.held_edges[self.held_ptr[i] : self.held_ptr[i + 1]].tolist()
        for e in held:
            r = schema.relations[self.rel_list[e]]
            box.append(f"{r.label}: {g.names[self.other[e]]}")
            sections.setdefault(r.section or spec.section, []).append(self.sentences[e])
        others = self.other_edges[self.other_ptr[i] : self.other_ptr[i + 1]].tolist()
        mentions = [self.mention_sentence(e) for e in others] + (extra or [])
        if mentions:
            sections["Connections"] = mentions
        parts = [lead, "Summary\n" + "\n".join(box)]
        parts += [f"## {title}\n" + " ".join(sentences) for title, sentences in sections.items() if sentences]
        text = "\n\n".join(parts)
        grounded = [
            e for e in held if self.sentences[e] in text and g.names[self.other[e]] in self.sentences[e]
        ]
        return text, grounded

    def article(self, i: int, extra: list[str] | None = None) -> dict[str, Any]:
        """Entity i's corpus row."""
        name, eid = self.g.names[i], self.g.ids[i]
        return {
            "id": eid,
            "url": url_for(name),
            "title": name,
            "text": self.article_text(i, extra)[0],
            "entity": eid,
        }

    def encode_articles(self, start: int, end: int, extra: dict[int, list[str]]) -> tuple[bytes, list[int]]:
        """corpus.jsonl lines of entities start..end-1 and the held edges their texts ground."""
        names, ids = self.g.names, self.g.ids
        lines, grounded = [], []
        for i in range(start, end):
            text, found = self.article_text(i, extra.get(i))
            lines.append(corpus_line(ids[i], url_for(names[i]), names[i], text, ids[i]))
            grounded += found
        return "".join(lines).encode("utf-8"), grounded


def _csr(keys: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges grouped by `keys` (stable, so each group keeps edge-id order): pointers and edge ids."""
    order = np.argsort(keys, kind="stable")
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n), out=ptr[1:])
    return ptr, order
