import random

import pytest

from searchgym.env.protocol import Action
from searchgym.env.rewards import REWARDS, cover_exact_match, exact_match, f1_score, format_ok
from searchgym.text import normalize_answer


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Quillport", "quillport"),
        ("  Varo   KESTREL. ", "varo kestrel"),
        ("an apple, a pear & the fig!", "apple pear fig"),
        ("Ōmura-Kai", "ōmurakai"),
        ("1,987", "1987"),
        ("ﬁle", "file"),  # NFKC folds the ligature
        ("Theatre", "theatre"),  # articles only as whole words
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_scores():
    assert exact_match("the Quillport.", ["Quillport"]) == 1.0
    assert exact_match("Quillport Bay", "Quillport") == 0.0
    assert exact_match("Q", ["Quillport", "Q"]) == 1.0  # aliases
    assert f1_score("Quillport Bay", "Quillport") == pytest.approx(2 / 3)
    assert f1_score("born in Quillport Bay", ["Bay Quillport", "Bay"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1_score("Varo", "Kestrel") == 0.0
    assert cover_exact_match("It was Quillport, I think", "Quillport") == 1.0
    assert cover_exact_match("Quillporter", "Quillport") == 0.0  # whole words only
    assert cover_exact_match("", "Quillport") == 0.0
    assert set(REWARDS) == {"em", "f1", "cover_em"}


def test_format_ok():
    assert format_ok([])
    assert format_ok([Action("search", "q"), {"error": None}])
    assert not format_ok([Action("search", "q"), {"error": "unknown URL x"}])
    assert not format_ok([Action("invalid", error="no action")])


WORDS = [
    "Quillport",
    "the",
    "a",
    "Varo",
    "Kestrel",
    "Bay",
    "1987",
    "Ōmura",
    "字",
    ",",
    ".",
    "-",
    "'",
    " ",
    "AN",
]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(0, 30)))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))


def test_reward_properties():
    rng = random.Random(7)
    for _ in range(3000):
        pred, gold = random_text(rng), random_text(rng)
        norm = normalize_answer(pred)
        assert normalize_answer(norm) == norm  # idempotent
        em, f1, cover = exact_match(pred, gold), f1_score(pred, gold), cover_exact_match(pred, gold)
        assert 0.0 <= f1 <= 1.0 and em in (0.0, 1.0) and cover in (0.0, 1.0)
        if em:
            assert f1 == 1.0 and cover == 1.0
        if f1 == 1.0:  # same bag of words
            assert sorted(norm.split()) == sorted(normalize_answer(gold).split())
        assert f1 == pytest.approx(f1_score(gold, pred))  # token F1 is symmetric
        assert exact_match(pred, pred) == 1.0 and f1_score(pred, pred) == 1.0
        assert f1_score(pred, [gold, pred]) == 1.0  # best over golds
