"""Copy warm-up rows: random name words to be copied into a search, before the student's SFT.

Two kinds (`DemoConfig.copy_warmup_rows`). `spans`: the prompt is a random run of 4-10 capitalised words of world
names and the action searches for exactly that run (`<search> Woca Poxstel Brek Li </search>`), the classic
induction task: the demo student learns it in about 100 steps (copy accuracy 0 -> 1), far faster than from
questions. `questions`: the oracle's first action searches for the name in the question (`<search> Poxstel Jiokciond employer </search>`).
A warm-up row is that prompt and that action with the name replaced, in both, by a pseudo-name whose capitalised
words are drawn at random from the words of all world names (so, with the demo's tokenizer, from the same tokens
the real names are made of); lower-case words such as "of" and "the" stay. A model trained on many such rows can only get
the query right by copying the name out of the question, and every name token becomes a training target, also the
tokens of names that no training answer ever contains. No fact of the world is in a row: only the question
template, the relation phrase of the query and random names. `DemoConfig.copy_warmup_steps` runs SFT on such rows
before the student's SFT (issue 14 item 2). [ours]
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

COPY_WARMUP_KINDS = ("spans", "questions")


def name_words(names: Iterable[str]) -> list[str]:
    """The capitalised words of the world's names, sorted (the pool random names are drawn from)."""
    return sorted({w for n in names for w in n.split() if w[:1].isupper()})


def span_rows(
    names: Iterable[str], count: int, seed: int, words: tuple[int, int] = (4, 10)
) -> list[dict[str, Any]]:
    """`count` rows (seeded): a prompt of random name words, an action searching for exactly them."""
    pool = name_words(names)
    if not pool:
        raise ValueError("copy warm-up: the world has no capitalised name words to draw from")
    rng = random.Random(f"copy-spans/{seed}")
    out = []
    for i in range(count):
        span = " ".join(rng.choice(pool) for _ in range(rng.randint(*words)))
        out.append(
            {
                "task_id": f"copy-span-{i}",
                "prompt": f"Words: {span}\n",  # a space before every word, as in the action
                "turns": [{"action": f"<search> {span} </search>", "observation": ""}],
                "success": True,
            }
        )
    return out


def first_query_name(row: dict[str, Any], names: list[str]) -> str | None:
    """The longest world name in both the question and the first action of a transcript, or None."""
    action = row["turns"][0]["action"] if row.get("turns") else ""
    return next((n for n in names if n in row["prompt"] and n in action), None)


def copy_warmup_rows(
    rows: list[dict[str, Any]], names: Iterable[str], count: int, seed: int
) -> list[dict[str, Any]]:
    """`count` one-turn rows (seeded): a transcript's prompt and first action with its name drawn again."""
    ordered = sorted(set(names), key=len, reverse=True)
    pool = name_words(ordered)
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
