"""How a logical form becomes a question: the schema's own templates plus our composition templates.

The schema gives, per relation, `questions` ("In which city was {x} born?") and `descriptors` ("the city where {x}
was born"), and per attribute a `noun` and `comparatives`. Intersections and obfuscated starts turn the
holder-article phrasing ("{source} was born in {target}.") into a relative clause ("who was born in Varnholt").

Readability rule: no relative clause inside another, and a phrase that contains a clause only ever ends its
sentence (never "the city where the founder of the company that ... was born"). A chain is nested while that holds
("In which region is the birthplace of the founder of Acme located?"); otherwise it is asked step by step, one
hop per clause: "Find the company Viombu Kemain works for, then the organization this company belongs to. In which
city is this organization based?" Descriptions of hidden starts open their own sentence ("Start from the person who
..."). Wh-words fit the answer's type ("Who is the author of X?", "What is the birthplace of X?").
Every choice is drawn from the task's seeded rng.
"""

from __future__ import annotations

import random
import re
from typing import Any

# alternatives to the last relation's own question: wrap its descriptor instead ({wh} fits the answer's type)
DESCRIPTOR_QUESTIONS = ("{wh} is {d}?", "Name {d}.")
INTERSECTION_QUESTIONS = (
    "Which {noun} {c1_bare} and {c2_bare}?",
    "Name the {noun} {c1} and {c2}.",
    "There is exactly one {noun} {pronoun} {c1_bare} and {c2_bare}. Which one?",
)
COMPARISON_QUESTIONS = (
    "Which has the {word} {attr}: {a} or {b}?",
    "Of {a} and {b}, which one has the {word} {attr}?",
    "Between {a} and {b}, which {noun} has the {word} {attr}?",
)
OBFUSCATED_DESCRIPTIONS = ("the {noun} {c1} and {c2}",)
STEP_OPENERS = ("Find {first}", "Take {first}", "Look up {first}")
START_FROM = "Start from {d}."
REFERENCE = "this {noun}"  # how a step names the entity the previous step found
# schema comparatives that do not read well before a noun ("the more number of employees")
NOUN_COMPARATIVES = {"more": "larger", "fewer": "smaller", "taller": "greater", "shorter": "smaller"}
PERSON_TYPES = frozenset({"person", "people", "human", "character"})
MAX_NESTED_CHARS = 140  # a nested chain longer than this is asked step by step
_HEAD = re.compile(r"the ([\w' -]+?) of \{x\}")  # "the parent company of {x}" -> "parent company"
_RELATIVE = re.compile(r"\b(where|who|whom|whose|which|that)\b", re.IGNORECASE)


def type_noun(entity_type: str) -> str:
    return entity_type.replace("_", " ").lower()


def is_person(entity_type: str) -> bool:
    return entity_type.lower() in PERSON_TYPES


def relative_pronoun(entity_type: str) -> str:
    return "who" if is_person(entity_type) else "that"


def wh_word(entity_type: str) -> str:
    return "Who" if is_person(entity_type) else "What"


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


def ends_with_x(template: str) -> bool:
    """Whether `{x}` closes the template, so whatever fills it ends the sentence (right-branching)."""
    return template.rstrip("?.! ").endswith("{x}")


def clausal(template: str) -> bool:
    """Whether the template wraps {x} in a clause: a relative word, or {x} followed by more words
    ("the company {x} works for")."""
    return bool(_RELATIVE.search(template.replace("{x}", ""))) or not ends_with_x(template)


class Phrase:
    """Question text under construction and whether it already contains a clause."""

    def __init__(self, text: str, has_clause: bool):
        self.text, self.has_clause = text, has_clause

    def fits(self, template: str) -> bool:
        """A phrase with a clause may only be wrapped by a clause-free template that it ends."""
        return not self.has_clause or (ends_with_x(template) and not clausal(template))

    def fits_question(self, template: str) -> bool:
        """A phrase with a clause must end the question ("Who founded <it>?", not "Where was <it> born?")."""
        return not self.has_clause or ends_with_x(template)

    def wrap(self, template: str) -> Phrase:
        return Phrase(template.format(x=self.text), self.has_clause or clausal(template))


def nested(start: Phrase, descriptors: list[list[str]], rng: random.Random) -> Phrase | None:
    """Nest one descriptor per hop around `start` under the readability rule, or None if impossible."""
    p = start
    for options in descriptors:
        ok = [d for d in options if p.fits(d)]
        if not ok:
            return None
        p = p.wrap(rng.choice(ok))
    return p


def steps(
    start: Phrase, descriptors: list[list[str]], nouns: list[str], rng: random.Random
) -> tuple[str, str]:
    """(lead sentences, reference to the last entity found): one hop per clause.

    `nouns[j]` is the type noun of the entity reached after j hops (nouns[0]: the start's). A described start
    opens its own sentence; every entity found is then referred to as "this <noun>"."""
    lead, ref = "", start.text
    if start.has_clause:
        lead, ref = START_FROM.format(d=start.text) + " ", REFERENCE.format(noun=nouns[0])
    if not descriptors:
        return lead.strip(), ref
    parts = []
    for j, options in enumerate(descriptors):
        d = rng.choice(options)
        parts.append(d.format(x=ref))
        head = _HEAD.fullmatch(d)
        # "this person" twice in a row would be ambiguous: call the new one by its role ("this parent")
        same = nouns[j + 1] == nouns[j] and head is not None
        ref = REFERENCE.format(noun=head.group(1) if same else nouns[j + 1])
    text = rng.choice(STEP_OPENERS).format(first=parts[0]) + "".join(f", then {p}" for p in parts[1:]) + "."
    return (lead + text).strip(), ref


def chain_question(
    start: Phrase,
    descriptors: list[list[str]],
    questions: list[str],
    nouns: list[str],
    answer_type: str,
    rng: random.Random,
) -> str:
    """Ask for the end of a chain of hops from `start`. `descriptors[i]` are hop i's descriptor options,
    `questions` the last hop's own questions (empty for an attribute question: pass its questions and the
    descriptors of the hops before it), `nouns[j]` the type noun after j hops, `answer_type` the answer's type.

    Nested when readable -- one time in three as "Who is <the descriptor of every hop>?" -- else step by step."""
    if rng.random() < 1 / 3:
        whole = nested(start, descriptors, rng)
        if whole is not None and len(whole.text) <= MAX_NESTED_CHARS:
            return descriptor_question(whole.text, answer_type, rng)
    return ask(start, descriptors[:-1], questions, nouns, rng)


def ask(
    start: Phrase, descriptors: list[list[str]], questions: list[str], nouns: list[str], rng: random.Random
) -> str:
    """One of `questions` about the entity reached by `descriptors` from `start` (nested or step by step)."""
    inner = nested(start, descriptors, rng)
    if inner is not None and len(inner.text) <= MAX_NESTED_CHARS:
        wrappers = [q for q in questions if inner.fits_question(q)]
        if wrappers:
            return rng.choice(wrappers).format(x=inner.text)
    lead, ref = steps(start, descriptors, nouns, rng)
    return f"{lead} {rng.choice(questions).format(x=ref)}".strip()


def descriptor_question(d: str, answer_type: str, rng: random.Random) -> str:
    return rng.choice(DESCRIPTOR_QUESTIONS).format(wh=wh_word(answer_type), d=d)


def intersection_question(entity_type: str, noun: str, c1: str, c2: str, rng: random.Random) -> str:
    return rng.choice(INTERSECTION_QUESTIONS).format(
        noun=noun, pronoun=relative_pronoun(entity_type), c1=c1, c2=c2, c1_bare=bare(c1), c2_bare=bare(c2)
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


_MARKER = re.compile(r"\b(where|who|whom|whose|which|that)\b(\s+\w+)?", re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.?!])\s+")
_COORDINATION = re.compile(r",\s*|\s+(?:and|or)\s+")


def clause_depth(question: str, nouns: frozenset[str] = frozenset()) -> int:
    """A text measure of how deeply relative clauses stack: the most relative markers (where / who / whose /
    which / that) in one stretch of a sentence between coordinations ("and", "or", commas). Not counted: a
    wh-word among a sentence's first three words (a question word), and "which" / "that" before a type noun,
    "one" or "this" ("which person has", "that company"). The garden path "the country that the region where the
    city where the organization that ... belongs to" scores 4; "the person who was born in X and whose birth year
    is 1950" scores 1. A heuristic: nesting hidden behind an "and" is undercounted."""
    worst = 0
    for sentence in _SENTENCES.split(question):
        for k, part in enumerate(_COORDINATION.split(sentence)):
            depth = 0
            for m in _MARKER.finditer(part):
                word, nxt = m.group(1).lower(), (m.group(2) or "").strip().lower()
                if k == 0 and len(part[: m.start()].split()) < 3:  # a question word
                    continue
                if word in ("which", "that") and (nxt in nouns or nxt in ("one", "this")):
                    continue
                depth += 1
            worst = max(worst, depth)
    return worst


def readability(tasks: list[Any], nouns: frozenset[str] = frozenset()) -> dict[str, dict[str, float]]:
    """Per level ("level/N") and over all tasks: max and mean `clause_depth`, question length in characters
    (max, mean), the longest sentence, and the share of questions asked in more than one sentence."""
    groups: dict[str, list[str]] = {"all": []}
    for t in sorted(tasks, key=lambda t: t.level):
        groups.setdefault(f"level/{t.level}", []).append(t.question)
        groups["all"].append(t.question)
    out = {}
    for key, questions in groups.items():
        depths = [clause_depth(q, nouns) for q in questions]
        sentences = [_SENTENCES.split(q) for q in questions]
        n = max(len(questions), 1)
        out[key] = {
            "tasks": len(questions),
            "max_clause_depth": max(depths, default=0),
            "mean_clause_depth": round(sum(depths) / n, 3),
            "max_chars": max(map(len, questions), default=0),
            "mean_chars": round(sum(map(len, questions)) / n, 1),
            "max_sentence_chars": max((len(s) for ss in sentences for s in ss), default=0),
            "multi_sentence": round(sum(len(ss) > 1 for ss in sentences) / n, 4),
        }
    return out
