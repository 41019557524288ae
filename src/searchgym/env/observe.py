"""Render tool results as the observation text the model reads next."""

from __future__ import annotations

from collections.abc import Sequence

from searchgym.index.base import SearchHit
from searchgym.world.types import Document


def cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (an ellipsis marks the cut)."""
    text = text.strip()
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


def render_search(hits: Sequence[SearchHit], doc_chars: int) -> str:
    if not hits:
        return "No results. Try other keywords."
    return "\n\n".join(
        f"[Doc {i}]({h.url}) {h.title}\n{cut(h.text, doc_chars)}" for i, h in enumerate(hits, 1)
    )


def render_page(doc: Document, page: int, pages: Sequence[str]) -> str:
    """One part (1-based) of a page split by `searchgym.index.base.paginate`."""
    more = (
        f"\n(Part {page} of {len(pages)}; ask for part {page + 1} to read on.)" if page < len(pages) else ""
    )
    return f"[Page {page} of {len(pages)}]({doc.url}) {doc.title}\n{pages[page - 1].strip()}{more}"


def render_error(message: str) -> str:
    return f"Error: {message}."


def wrap(protocol: str, content: str) -> str:
    """The exact text appended before the next model turn (tags) or the tool message content (json)."""
    return f"\n<information>{content}</information>\n" if protocol == "tags" else content
