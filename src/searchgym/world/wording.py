"""Filling the schema's templates, and reading sentences back with them.

`fill` is how every article sentence is written from a template. `template_regex` is its inverse: the sentence a
template writes, with the fields as named groups. The schema check (`wording_problems`) and the LLM writer's exact
fast path read sentences this way, so what a sentence claims is decided by the same templates that write it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

_A_VOWEL = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])(?![Uu]ni|[Uu]se|[Ee]u)")
_FIELD = re.compile(r"{(\w+)}")
_ARTICLE = re.compile(r"\b([Aa]) $")
# stand-ins for two entity names when a template is read against the others (no vowel first: "a" stays "a")
SOURCE_MARK, TARGET_MARK = "QQSRC", "QQTGT"


def fill(template: str, **fields: str) -> str:
    """Format a template and fix "a" before a vowel ("a engineer" -> "an engineer")."""
    text = template.format(**fields)
    return _A_VOWEL.sub(r"\1n ", text) if "a {" in template or "A {" in template else text


@lru_cache(maxsize=4096)
def template_regex(template: str) -> re.Pattern[str]:
    """A pattern matching exactly the sentences `fill(template, ...)` writes; fields become named groups
    (a repeated field must repeat the same text)."""
    out, seen, pos = [], set(), 0
    for m in _FIELD.finditer(template):
        literal = re.escape(template[pos : m.start()])
        if "a {" in template or "A {" in template:  # fill may have turned "a" into "an"
            literal = _ARTICLE.sub(lambda a: a.group(1) + "n? ", literal.replace("\\ ", " "))
        out.append(literal)
        name = m.group(1)
        out.append(f"(?P={name})" if name in seen else f"(?P<{name}>.+?)")
        seen.add(name)
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return re.compile("".join(out))


def read_as(template: str, sentence: str) -> dict[str, str] | None:
    """The field values if `sentence` is exactly what `template` writes, else None."""
    m = template_regex(template).fullmatch(sentence.strip())
    return m.groupdict() if m else None


def relation_templates(spec: Any) -> list[tuple[str, int, str]]:
    """(kind, index, template) of every sentence a relation's edges are written with."""
    return [("phrasings", j, t) for j, t in enumerate(spec.phrasings)] + [
        ("other_phrasings", j, t) for j, t in enumerate(spec.other_phrasings)
    ]


def wording_problems(relations: list[Any]) -> list[str]:
    """Templates whose sentences also read as a different edge than the one they state.

    Each holder and other-end template is filled with two stand-in names and read back with every relation's
    templates. A reading is harmless when it is the same relation in the same direction (or either direction of a
    symmetric relation), or when the entity types do not fit the other relation. Anything else means an article
    would claim an edge the graph does not have, e.g. "{target} is married to {source}." in the other end's article
    of a non-symmetric spouse_of states spouse_of with the ends swapped.
    """
    problems = []
    for i, r in enumerate(relations):
        type_of = {SOURCE_MARK: r.source, TARGET_MARK: r.target}
        for kind, j, t in relation_templates(r):
            sentence = fill(t, source=SOURCE_MARK, target=TARGET_MARK)
            for r2 in relations:
                hit = next(
                    (
                        (t2, got)
                        for _, _, t2 in relation_templates(r2)
                        if (got := read_as(t2, sentence)) is not None
                        and {got.get("source"), got.get("target")} == {SOURCE_MARK, TARGET_MARK}
                    ),
                    None,
                )
                if hit is None:
                    continue
                t2, got = hit
                swapped = got["source"] == TARGET_MARK
                if r2 is r and (not swapped or r.cardinality == "symmetric"):
                    continue
                if (r2.source, r2.target) != (type_of[got["source"]], type_of[got["target"]]):
                    continue
                ends = "{target} as its source and {source} as its target" if swapped else "the same ends"
                fix = (
                    "; reword it so it names the holder as the relation does, or declare `cardinality: symmetric`"
                    if r2 is r
                    else f"; reword it so it cannot be read as {r2.name}"
                )
                problems.append(
                    f"relations[{i}].{kind}[{j}]: {t!r} reads as {r2.name} with {ends} (the wording of "
                    f"{r2.name}'s {t2!r}), so articles would state {r2.name} edges the graph does not have{fix}"
                )
                break
    return problems
