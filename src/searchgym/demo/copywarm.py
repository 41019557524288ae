"""Copy warm-up rows: the first turn of every oracle transcript with its entity renamed at random.

The oracle's first action searches for the name in the question (`<search> Poxstel Jiokciond employer </search>`).
A warm-up row is that prompt and that action with the name replaced, in both, by a pseudo-name whose capitalised
words are drawn at random from the words of all world names (so, with the demo's tokenizer, from the same tokens
the real names are made of); lower-case words such as "of" and "the" stay. A model trained on many such rows can only get
the query right by copying the name out of the question, and every name token becomes a training target, also the
tokens of names that no training answer ever contains. No fact of the world is in a row: only the question
template, the relation phrase of the query and random names. `DemoConfig.copy_warmup_steps` runs SFT on these rows
before the student's SFT (issue 14 item 2). [ours]
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any


def first_query_name(row: dict[str, Any], names: list[str]) -> str | None:
    """The longest world name in both the question and the first action of a transcript, or None."""
    action = row["turns"][0]["action"] if row.get("turns") else ""
    return next((n for n in names if n in row["prompt"] and n in action), None)


def copy_warmup_rows(
    rows: list[dict[str, Any]], names: Iterable[str], count: int, seed: int
) -> list[dict[str, Any]]:
    """`count` one-turn rows (seeded): a transcript's prompt and first action with its name drawn again."""
    ordered = sorted(set(names), key=len, reverse=True)
    pool = sorted({w for n in ordered for w in n.split() if w[:1].isupper()})
    base = [(r, n) for r in rows if (n := first_query_name(r, ordered))]
    if not base or not pool:
        raise ValueError("copy warm-up: no transcript's first query contains a name of its question")
    rng = random.Random(f"copy-warmup/{seed}")
    out = []
    for i in range(count):
        row, name = base[rng.randrange(len(base))]
        fresh = " ".join(rng.choice(pool) if w[:1].isupper() else w for w in name.split(" "))
        action = row["turns"][0]["action"].replace(name, fresh)
        out.append(
            {
                "task_id": f"copy-warmup-{i}",
                "prompt": row["prompt"].replace(name, fresh),
                "turns": [{"action": action, "observation": ""}],
                "success": True,
            }
        )
    return out
