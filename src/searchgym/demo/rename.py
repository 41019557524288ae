"""Renamed copies of oracle transcripts: the same episode in a world whose names were drawn again.

Every world name in a transcript (question, queries, observations, URLs, answer) is replaced consistently by a fresh
name of the same shape (`world.names.word` roots, generic words such as "University" or "Prize" kept), so in a copy
the right query and the right answer can only be copied from the question and the observations, never recalled.
A demo option (`DemoConfig.sft_renamed_copies`) toward issue 14 item 2: a student that must copy generalises to
names it never saw in a training answer. [ours]
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from typing import Any

from searchgym.world.names import name_key, word

_LOWER = re.compile(r"^[a-z]")


def _fresh(name: str, rng: random.Random, taken: set[str]) -> str:
    """`name` with each of its root words (capitalised and not a generic word) drawn again."""
    generic = {"The", "University", "Institute", "Technology", "Prize", "Medal", "Award", "Cup", "Fellowship"}
    for _ in range(100):
        words = [
            w
            if _LOWER.match(w) or w in generic or not w[:1].isalpha()
            else word(rng, max(1, round(len(w) / 3.5)))
            for w in name.split(" ")
        ]
        new = " ".join(words)
        if new != name and name_key(new) not in taken:
            taken.add(name_key(new))
            return new
    raise ValueError(f"no fresh name for {name!r} after 100 draws")


def _slug(name: str) -> str:
    return "_".join(name_key(name).split())


def rename_row(row: dict[str, Any], names: list[str], rng: random.Random, taken: set[str]) -> dict[str, Any]:
    """One renamed copy of a transcript row; `names` longest first (no world name sits inside another)."""
    text = row["prompt"] + "".join(t["action"] + (t.get("observation") or "") for t in row["turns"])
    present = [n for n in names if n in text]
    mapping = {}
    for n in present:
        new = _fresh(n, rng, taken)
        mapping[n], mapping[_slug(n)] = new, _slug(new)
    if not mapping:
        return row
    keys = "|".join(re.escape(k) for k in sorted(mapping, key=len, reverse=True))
    pattern = re.compile(rf"(?<!\w)(?:{keys})(?!\w)")

    def sub(s: str) -> str:
        return pattern.sub(lambda m: mapping[m.group(0)], s)

    turns = [
        {**t, "action": sub(t["action"]), "observation": sub(t.get("observation") or "")}
        for t in row["turns"]
    ]
    return {**row, "prompt": sub(row["prompt"]), "turns": turns, "task_id": f"{row['task_id']}/renamed"}


def renamed_transcripts(
    rows: list[dict[str, Any]], names: Iterable[str], copies: int, seed: int
) -> list[dict]:
    """`copies` renamed copies of every row (seeded), fresh names never equal to a world name."""
    ordered = sorted(set(names), key=len, reverse=True)
    taken = {name_key(n) for n in ordered}
    rng = random.Random(f"renamed-transcripts/{seed}")
    return [rename_row(r, ordered, rng, taken) for _ in range(copies) for r in rows]
