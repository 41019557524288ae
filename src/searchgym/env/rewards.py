"""Answer scores and the format gate.

Every score compares one prediction with one or more gold answers (the answer plus its aliases) after the usual
normalisation (lower case, no punctuation, no articles, single spaces) and keeps the best match.
`REWARDS` maps the config name (`EnvConfig.reward`) to the score function.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from searchgym.text import normalize_answer


def _golds(golds: str | Sequence[str]) -> list[str]:
    return [golds] if isinstance(golds, str) else list(golds)


def exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    pred = normalize_answer(prediction)
    return float(any(pred == normalize_answer(g) for g in _golds(golds)))


def _f1(pred_tokens: list[str], gold_tokens: list[str]) -> float:
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def f1_score(prediction: str, golds: str | Sequence[str]) -> float:
    """Word-level F1 between normalised texts, best over the golds."""
    pred = normalize_answer(prediction).split()
    return max((_f1(pred, normalize_answer(g).split()) for g in _golds(golds)), default=0.0)


def cover_exact_match(prediction: str, golds: str | Sequence[str]) -> float:
    """1 if some normalised gold appears in the normalised prediction as a whole-word span."""
    pred = f" {normalize_answer(prediction)} "
    return float(any(f" {normalize_answer(gold)} " in pred for gold in _golds(golds)))


REWARDS: dict[str, Callable[[str, str | Sequence[str]], float]] = {
    "em": exact_match,
    "f1": f1_score,
    "cover_em": cover_exact_match,
}


def format_ok(turns: Iterable[Any]) -> bool:
    """True when no turn of the trajectory had a format error.

    A turn is a `StepInfo` or a parsed `Action` (attribute `error`); the error covers the parser's findings
    (unbalanced/nested tags, several actions, text after the answer, bad JSON, …) and the environment's (unknown URL,
    page out of range).
    """
    return all(turn.error is None for turn in turns)
