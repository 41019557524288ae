"""Fictional names with unique surface forms and no substring traps.

A name style (registered by name, picked by the schema's `name_style`) draws a candidate from a seeded
`random.Random`. `NameRegistry.claim` accepts a candidate only if, after folding case and punctuation,
(a) no entity has the same name, (b) no existing name occurs inside it at word boundaries and
(c) it does not occur inside an existing name. So "Ana" and "Ana Li" can never both exist.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

_ONSETS = "b br c d dr f g gr h k l m n p r s st t th v z j w sh tr".split()
_VOWELS = "a e i o u a e o ai ea io".split()
_CODAS = ["", "", "", "n", "r", "l", "s", "m", "k", "th", "x", "nd"]
_APOSTROPHES = re.compile(r"['\u2019]")
_NON_WORD = re.compile(r"[\W_]+")


def name_key(name: str) -> str:
    """Case- and punctuation-insensitive form used for uniqueness: "Ana-Li's" -> "ana lis"."""
    return " ".join(_NON_WORD.sub(" ", _APOSTROPHES.sub("", name.lower())).split())


def word(rng: random.Random, syllables: int) -> str:
    return "".join(
        rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(syllables)
    ).title()


def _root(rng: random.Random) -> str:
    return word(rng, rng.choice((2, 2, 3)))


def _person(rng: random.Random) -> str:
    return f"{word(rng, rng.choice((1, 2, 2)))} {word(rng, rng.choice((2, 2, 3)))}"


def _city(rng: random.Random) -> str:
    return word(rng, rng.choice((1, 2))) + rng.choice(
        "ton burg vik ford mouth dale port stad heim wick".split()
    )


def _region(rng: random.Random) -> str:
    return f"{_root(rng)} {rng.choice('Province Valley Highlands Coast County Basin Marches'.split())}"


def _country(rng: random.Random) -> str:
    return word(rng, rng.choice((1, 2))) + rng.choice("ia land ora esh avia ania".split())


def _company(rng: random.Random) -> str:
    kind = "Industries Dynamics Systems Labs Group Holdings Works Foods Motors Media Energy".split()
    return f"{_root(rng)} {rng.choice(kind)}"


def _organization(rng: random.Random) -> str:
    kind = "Society Foundation Council League Association Trust Alliance".split()
    return f"{_root(rng)} {rng.choice(kind)}"


def _university(rng: random.Random) -> str:
    root = _root(rng)
    return rng.choice((f"University of {root}", f"{root} University", f"{root} Institute of Technology"))


_ADJ = (
    "Silent Hidden Crimson Distant Quiet Broken Golden Endless Hollow Burning Last Frozen Pale Wild "
    "Bitter Gentle Restless Iron Silver Northern Southern Forgotten Lonely Secret Shining"
).split()
_NOUN = (
    "Harbor River Garden Tower Winter Orchard Mirror Lantern Voyage Archive Kingdom Compass Ember Meadow "
    "Signal Harvest Canyon Letter Island Bridge Forest Mountain Shadow Season Chorus"
).split()


def _work(rng: random.Random) -> str:
    adj, noun, root = rng.choice(_ADJ), rng.choice(_NOUN), _root(rng)
    return rng.choice((f"The {adj} {noun} of {root}", f"{root} and the {adj} {noun}", f"{adj} {root}"))


def _award(rng: random.Random) -> str:
    return f"{_root(rng)} {rng.choice('Prize Medal Award Cup Fellowship'.split())}"


NAME_STYLES: dict[str, Callable[[random.Random], str]] = {
    "person": _person,
    "city": _city,
    "region": _region,
    "country": _country,
    "company": _company,
    "organization": _organization,
    "university": _university,
    "work": _work,
    "award": _award,
    "word": _root,
}


def _spans(tokens: list[str]) -> list[str]:
    """All proper contiguous token spans ("a b c" -> a, b, c, "a b", "b c")."""
    n = len(tokens)
    return [" ".join(tokens[i:j]) for i in range(n) for j in range(i + 1, n + 1) if j - i < n]


class NameRegistry:
    """Claims names so that no two fold to the same name key and none sits inside another."""

    def __init__(self) -> None:
        self.names: set[str] = set()  # folded names
        self.inside: set[str] = set()  # folded proper spans of claimed names

    def claim(self, name: str) -> bool:
        """Register `name` if it is free; False if it collides or would be a substring trap."""
        f = name_key(name)
        if not f or f in self.names or f in self.inside:
            return False
        spans = _spans(f.split())
        if any(s in self.names for s in spans):
            return False
        self.names.add(f)
        self.inside.update(spans)
        return True

    def draw(self, style: str, rng: random.Random, max_tries: int = 1000) -> str:
        make = NAME_STYLES[style]
        for _ in range(max_tries):
            name = make(rng)
            if self.claim(name):
                return name
        raise RuntimeError(
            f"could not find a free {style!r} name after {max_tries} tries; the name space is exhausted "
            "(use fewer entities of this type or a richer name style)"
        )
