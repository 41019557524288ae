"""The records a world is made of. Files on disk hold exactly these fields (JSON Lines)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Entity:
    id: str  # stable, e.g. "person/000042"
    type: str  # schema entity type name
    name: str  # unique surface form (after case/punctuation folding)
    attrs: dict[str, Any] = field(default_factory=dict)  # attribute name -> value (int, float, str, ISO date)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Edge:
    id: int
    relation: str  # schema relation name
    source: str  # entity id
    target: str  # entity id
    verified: bool = False  # set by verification; tasks only use verified edges
    failures: tuple[str, ...] = ()  # names of failed checks ("grounded", "retrievable", "contradicted")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["failures"] = list(self.failures)
        return d


@dataclass(frozen=True)
class Fact:
    """Where an edge is stated: the sentence in the holder article (the functional side of the edge)."""

    edge: int
    doc: str  # document id of the holder article
    sentence: str  # exact sentence in that article's text stating the edge and naming the other end
