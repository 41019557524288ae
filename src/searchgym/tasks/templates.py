"""How a logical form becomes a question: the schema's own templates plus our composition templates.

The schema gives, per relation, `questions` ("In which city was {x} born?") and `descriptors` ("the city where {x}
was born"), and per attribute a `noun` and `comparatives`. Chains nest descriptors; intersections and obfuscated
starts turn the holder-article phrasing ("{source} was born in {target}.") into a relative clause
("who was born in Varnholt"); comparisons use the templates below. Every choice is drawn from the task's seeded rng.
"""

from __future__ import annotations

import random
import re
from typing import Any

# alternatives to the last relation's own question: wrap its descriptor instead
DESCRIPTOR_QUESTIONS = ("What is {d}?", "Name {d}.")
INTERSECTION_QUESTIONS = (
    "Which {noun} {c1_bare} and {c2_bare}?",
    "Name the {noun} {c1} and {c2}.",
    "There is exactly one {noun} that {c1_bare} and {c2_bare}. Which one?",
)
COMPARISON_QUESTIONS = (
    "Which has the {word} {attr}: {a} or {b}?",
    "Of {a} and {b}, which one has the {word} {attr}?",
    "Between {a} and {b}, which {noun} has the {word} {attr}?",
)
OBFUSCATED_DESCRIPTIONS = ("the {noun} {c1} and {c2}",)
# schema comparatives that do not read well before a noun ("the more number of employees")
NOUN_COMPARATIVES = {"more": "larger", "fewer": "smaller", "taller": "greater", "shorter": "smaller"}
PERSON_TYPES = frozenset({"person", "people", "human", "character"})


def type_noun(entity_type: str) -> str:
    return entity_type.replace("_", " ").lower()


def relative_pronoun(entity_type: str) -> str:
    return "who" if entity_type.lower() in PERSON_TYPES else "that"


def relation_clause(spec: Any, holder_type: str, other_name: str) -> str | None:
    """A relative clause saying the holder has `other_name` at the relation's other end, or None.

    Built from a holder-article phrasing that opens with the holder: "{source} was born in {target}." becomes
    "who was born in <other>", "{target}'s parent is {source}." becomes "whose parent is <other>".
    """
    holder, other = ("{source}", "{target}") if spec.holder == "source" else ("{target}", "{source}")
    for phrasing in spec.phrasings:
        text = phrasing.strip().rstrip(".")
        if text.count(other) != 1 or holder in text[len(holder) :]:
            continue
        if text.startswith(holder + "'s "):
            return "whose " + text[len(holder) + 3 :].replace(other, other_name)
        if text.startswith(holder + " "):
            return f"{relative_pronoun(holder_type)} " + text[len(holder) + 1 :].replace(other, other_name)
    return None


def attribute_clause(spec: Any, value_text: str) -> str:
    return f"whose {spec.noun} is {value_text}"


def bare(clause: str) -> str:
    """'who was born in X' -> 'was born in X' (for templates that already have a subject)."""
    for pronoun in ("who ", "that "):
        if clause.startswith(pronoun):
            return clause[len(pronoun) :]
    return "has " + clause[len("whose ") :].replace(" is ", " ", 1) if clause.startswith("whose ") else clause


def chain_description(start: str, descriptors: list[list[str]], rng: random.Random) -> str:
    """Nest relation descriptors around a start phrase: the city where (the founder of (X)) was born."""
    text = start
    for options in descriptors:
        text = rng.choice(options).format(x=text)
    return text


def chain_question(start: str, descriptors: list[list[str]], questions: list[str], rng: random.Random) -> str:
    """The last relation's question around the nested descriptors, or (one time in three) a descriptor wrapper."""
    if rng.random() < 1 / 3:
        return rng.choice(DESCRIPTOR_QUESTIONS).format(d=chain_description(start, descriptors, rng))
    return rng.choice(questions).format(x=chain_description(start, descriptors[:-1], rng))


def intersection_question(noun: str, c1: str, c2: str, rng: random.Random) -> str:
    return rng.choice(INTERSECTION_QUESTIONS).format(
        noun=noun, c1=c1, c2=c2, c1_bare=bare(c1), c2_bare=bare(c2)
    )


def comparison_question(noun: str, attr: str, word: str, a: str, b: str, rng: random.Random) -> str:
    word = NOUN_COMPARATIVES.get(word, word)
    return rng.choice(COMPARISON_QUESTIONS).format(noun=noun, attr=attr, word=word, a=a, b=b)


def obfuscated_description(noun: str, c1: str, c2: str, rng: random.Random) -> str:
    return rng.choice(OBFUSCATED_DESCRIPTIONS).format(noun=noun, c1=c1, c2=c2)


_DOUBLE_THE = re.compile(r"\bthe (?=the\b)", re.IGNORECASE)


def tidy(text: str) -> str:
    """Capitalise the first letter and drop a doubled article ("presents the the award" -> "presents the award")."""
    text = _DOUBLE_THE.sub("", text)
    return text[:1].upper() + text[1:]
