"""Render tool results as the observation text the model reads next."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from searchgym.env.records import ShownHit, ShownPage
from searchgym.types import SearchHit

ECHO_CHARS = 100  # most characters of the model's own text an error message repeats [ours]
CUT_MARK = "\n[…cut]"  # ends an observation cut to env.max_observation_chars


def cut(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters (an ellipsis marks the cut)."""
    text = text.strip()
    return text if len(text) <= limit else text[: max(limit - 1, 0)].rstrip() + "…"


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


SNIPPETS = ("lead", "best")

_WORD = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")
_SUFFIXES = ("ing", "ed", "er", "es", "s")
_STOP = frozenset(
    "a an and are as at by for from has have in is it its of on or the to was were what which who whom whose "
    "where when how does did do".split()
)


def _terms(text: str) -> set[str]:
    """Lower-cased words without stop words, a light suffix strip (employs/employed/employer -> employ)."""
    out = set()
    for w in _WORD.findall(text.lower()):
        if w in _STOP:
            continue
        for suf in _SUFFIXES:
            if len(w) > len(suf) + 3 and w.endswith(suf):
                w = w[: -len(suf)]
                break
        out.add(w)
    return out


def units(text: str) -> list[str]:
    """The sentences and infobox lines of an article (headings dropped), in order."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line == "Summary":
            continue
        out += [s for s in _SENTENCE_END.split(line) if s.strip()]
    return out


def best_snippet(text: str, query: str, limit: int) -> str:
    """The sentence or infobox line of `text` that best matches `query`, cut to `limit` characters.

    Each unit scores the sum, over the query terms it contains, of log(1 + units / units containing the term):
    a term found in every sentence (the article's own name) counts little, a rare one (a relation word) a lot.
    Ties go to the earlier unit; with no query term in any unit the article's lead is shown (as "lead").
    Deterministic and linear in the article length, like a search engine's query-dependent crop."""
    parts = units(text)
    q = _terms(query)
    if not parts or not q:
        return cut(text, limit)
    sets = [_terms(u) & q for u in parts]
    df = {t: sum(t in s for s in sets) for t in q}
    weight = {t: math.log(1 + len(parts) / n) for t, n in df.items() if n}
    scores = [
        sum(weight[t] for t in sorted(s)) for s in sets
    ]  # sorted: a float sum must not follow hash order
    best = max(range(len(parts)), key=lambda i: (scores[i], -i))
    return cut(parts[best], limit) if scores[best] > 0 else cut(text, limit)


def show_hits(
    hits: Sequence[SearchHit], doc_chars: int, snippet: str = "lead", query: str = ""
) -> list[ShownHit]:
    """The hits as the observation shows them: link, title, and either the article's first `doc_chars` characters
    ("lead") or its sentence that best matches the query ("best", see `best_snippet`)."""

    def body(h: SearchHit) -> str:
        return best_snippet(h.text, query, doc_chars) if snippet == "best" else cut(h.text, doc_chars)

    return [ShownHit(i, h.url, h.title, body(h)) for i, h in enumerate(hits, 1)]


def render_search(shown: Sequence[ShownHit]) -> str:
    if not shown:
        return "No results. Try other keywords."
    return "\n\n".join(f"[Doc {h.rank}]({h.url}) {h.title}\n{h.snippet}" for h in shown)


def render_page(page: ShownPage) -> str:
    """One part (1-based) of an article split by `paginate`."""
    n = page.parts
    more = f"\n(Part {page.part} of {n}; ask for part {page.part + 1} to read on.)" if page.part < n else ""
    return f"[Page {page.part} of {n}]({page.url}) {page.title}\n{page.text}{more}"


def render_lines(url: str, title: str, phrase: str, lines: Sequence[str], total: int) -> str:
    """The lines of an article that contain `phrase` (find)."""
    head = f"[Find]({url}) {title}: {total} line(s) contain {echo(phrase)!r}"
    more = f"\n({total - len(lines)} more not shown)" if total > len(lines) else ""
    return head + "".join(f"\n- {line}" for line in lines) + more


def render_error(message: str) -> str:
    return f"Error: {message}."


def echo(text: str, limit: int = ECHO_CHARS) -> str:
    """At most `limit` characters of the model's own text, for an error message (never the whole of it)."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def fit(content: str, limit: int) -> tuple[str, bool]:
    """`content` cut to at most `limit` characters (the cut is marked); and whether it was cut."""
    if len(content) <= limit:
        return content, False
    return content[: max(limit - len(CUT_MARK), 0)] + CUT_MARK, True


def wrap(protocol: str, content: str) -> str:
    """The exact text appended before the next model turn (tags) or the tool message content (json)."""
    return f"\n<information>{content}</information>\n" if protocol == "tags" else content
