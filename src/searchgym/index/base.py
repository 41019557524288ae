"""The search contract every backend and the HTTP client implement.

An agent acts through two tools: `search(query, k)` returns ranked hits, `access(url)` returns a page.
Backends register by name (`@register_engine("bm25s")`) so configs pick one with a string.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from searchgym.registry import registrar
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


# Break points from coarse to fine: paragraph, line, sentence end, word; the separator stays on the left piece.
_BREAKS = (
    re.compile(r"(?<=\n\n)"),
    re.compile(r"(?<=\n)"),
    re.compile(r"(?<=[.!?] )"),
    re.compile(r"(?<= )"),
)


def paginate(text: str, page_chars: int) -> list[str]:
    """Split `text` into pages of at most `page_chars` characters, at paragraph, sentence or word boundaries
    where possible. Joining the pages gives back `text` exactly; there is always at least one page."""
    if page_chars < 1:
        raise ValueError(f"page_chars must be >= 1, got {page_chars}")
    if len(text) <= page_chars:
        return [text]
    pages: list[str] = []
    _pack(text, page_chars, 0, pages)
    return pages


def _pack(text: str, limit: int, level: int, pages: list[str]) -> None:
    if level == len(_BREAKS):
        pages.extend(text[i : i + limit] for i in range(0, len(text), limit))
        return
    current = ""
    for piece in _BREAKS[level].split(text):
        if len(current) + len(piece) <= limit:
            current += piece
            continue
        if current:
            pages.append(current)
            current = ""
        if len(piece) <= limit:
            current = piece
        else:
            _pack(piece, limit, level + 1, pages)
            current = pages.pop()  # the tail of a split piece may still share a page with what follows
    if current:
        pages.append(current)


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


register_engine = registrar(ENGINES, "search engine")
