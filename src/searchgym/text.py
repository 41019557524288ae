"""Answer normalisation: the one definition the rewards, the task checks and the aliases all use."""

from __future__ import annotations

import re
import string
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
# ASCII fast path: exactly the characters the Unicode rule below drops (punctuation, symbols, controls)
_ASCII_DROP = str.maketrans(
    "", "", string.punctuation + "".join(map(chr, [*range(32), 127])).replace("\t", "").replace("\n", "")
)


def normalize_answer(text: str) -> str:
    """Case-fold, NFKC, drop punctuation, symbols and control characters, drop English articles, collapse
    whitespace. The SQuAD-style normalisation of EM / F1, extended to Unicode."""
    if text.isascii():
        text = text.lower().translate(_ASCII_DROP)
    else:
        text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
        text = "".join(
            ch for ch in text if not unicodedata.category(ch).startswith(("P", "S", "C")) or ch in " \t\n"
        )
    return " ".join(_ARTICLES.sub(" ", text).split())
