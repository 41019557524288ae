"""Other accepted surface forms of an answer: short names that cannot be confused, attribute values without units."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from searchgym.text import normalize_answer

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


class Aliases:
    """Short forms ("Drailbron" for "Drailbron Group") that cannot be confused with another entity: the alias is
    nobody else's name or alias, and does not occur (at word boundaries) inside any other entity's name.
    Computed on demand for answer entities; the indexes over all names are built once."""

    def __init__(self, entities: dict[str, Any]):
        self.entities = entities
        self.by_token: dict[str, set[str]] = defaultdict(set)
        self.owners: dict[str, set[str]] = defaultdict(set)
        for eid, e in entities.items():
            for tok in set(normalize_answer(e.name).split()):
                self.by_token[tok].add(eid)
            for a in _strip_affixes(e.name):
                self.owners[normalize_answer(a)].add(eid)
        self.cache: dict[str, tuple[str, ...]] = {}

    def _ok(self, eid: str, alias: str) -> bool:
        a = normalize_answer(alias)
        if len(a) < 3 or self.owners[a] != {eid}:
            return False
        others = set.intersection(*(self.by_token.get(t, set()) for t in a.split())) - {eid}
        return all(f" {a} " not in f" {normalize_answer(self.entities[o].name)} " for o in others)

    def get(self, eid: str) -> tuple[str, ...]:
        if eid not in self.cache:
            self.cache[eid] = tuple(a for a in _strip_affixes(self.entities[eid].name) if self._ok(eid, a))
        return self.cache[eid]
