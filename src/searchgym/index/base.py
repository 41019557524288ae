"""The search contract every backend and the HTTP client implement.

An agent acts through two tools: `search(query, k)` returns ranked hits, `access(url)` returns a page.
Backends register by name (`@register_engine("bm25s")`) so configs pick one with a string.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from searchgym.world.types import Document


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


class SearchEngine(ABC):
    """Ranked search and access by URL over one corpus."""

    name: str = "abstract"

    @abstractmethod
    def search(self, query: str, k: int = 5) -> list[SearchHit]: ...

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]:
        return [self.search(q, k) for q in queries]

    @abstractmethod
    def access(self, url: str) -> Document | None:
        """The document at `url`, or None if the URL is not in the corpus."""

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


ENGINES: dict[str, Callable[..., SearchEngine]] = {}


def register_engine(name: str) -> Callable[[type[SearchEngine]], type[SearchEngine]]:
    def deco(cls: type[SearchEngine]) -> type[SearchEngine]:
        if name in ENGINES:
            raise ValueError(f"search engine {name!r} registered twice")
        cls.name = name
        ENGINES[name] = cls
        return cls

    return deco
