"""The value types shared by every stage: documents and search hits, tasks and their evidence.

They sit at the bottom of the data flow so that world, index, tasks, env and everything above can use them
without importing each other. Files on disk hold exactly these fields (JSON Lines).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    id: str  # document id (the entity id for entity articles, "distractor/…" for noise)
    url: str  # unique, stable
    title: str
    text: str
    entity: str | None = None  # entity id the article is about (None for distractors)

    @property
    def contents(self) -> str:
        """Search-R1 corpus format: title, newline, text."""
        return f"{self.title}\n{self.text}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SearchHit:
    doc_id: str
    url: str
    title: str
    text: str  # full article text; renderers cut it to the observation budget
    score: float

    @property
    def contents(self) -> str:
        return f"{self.title}\n{self.text}"


@dataclass(frozen=True)
class EvidenceStep:
    entity: str  # entity id whose article must be read at this step
    url: str  # that article's URL
    edge: int | None = None  # edge id used at this step (None for the final/attribute read)
    relation: str | None = None
    attribute: str | None = None  # attribute read at this step, for comparisons and obfuscation


@dataclass(frozen=True)
class Task:
    id: str
    question: str
    answer: str
    aliases: tuple[str, ...]  # other accepted surface forms of the answer
    type: str  # "chain" | "obfuscated" | "intersection" | "comparison"
    hops: int
    level: int  # difficulty level (1 = easiest); curriculum stages select by level
    split: str  # "train" | "dev" | "test"
    evidence: tuple[EvidenceStep, ...]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def answers(self) -> list[str]:
        return [self.answer, *self.aliases]

    @property
    def evidence_urls(self) -> list[str]:
        return list(dict.fromkeys(s.url for s in self.evidence))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["aliases"] = list(self.aliases)
        d["evidence"] = [asdict(s) for s in self.evidence]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Task:
        d = dict(d)
        d["aliases"] = tuple(d.get("aliases", ()))
        d["evidence"] = tuple(EvidenceStep(**s) for s in d.get("evidence", ()))
        return cls(**d)
