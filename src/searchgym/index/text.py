"""Tokenisation shared by the numpy BM25 backend and verification, plus typo tolerance.

Lean on purpose: one regex, lower-casing, a short English stop-word list, and a Snowball stemmer whose
results are cached per word (the same few thousand words recur in every query).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import Stemmer

WORD = re.compile(r"\w+")
# bm25s's English list (33 words): frequent function words whose postings cover most of the corpus.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there "
    "these they this to was will with".split()
)
MAX_TOKEN_CHARS = 40  # longer "words" are noise (ids, hashes); tantivy's en_stem drops them the same way


class Tokenizer:
    """`tokenize(text) -> list[str]`: lower-case words, stop words removed, stemmed (cached)."""

    def __init__(self, stem: bool = True, stopwords: Iterable[str] = STOPWORDS):
        self._stemmer = Stemmer.Stemmer("english") if stem else None
        self._stopwords = frozenset(stopwords)
        self._cache: dict[str, str] = {}

    def stem(self, word: str) -> str:
        out = self._cache.get(word)
        if out is None:
            out = self._stemmer.stemWord(word) if self._stemmer else word
            if len(self._cache) < 1_000_000:
                self._cache[word] = out
        return out

    def words(self, text: str) -> list[str]:
        """Lower-cased words without stop words, not stemmed (what fuzzy matching compares)."""
        stop = self._stopwords
        return [w for w in WORD.findall(text.lower()) if w not in stop and len(w) <= MAX_TOKEN_CHARS]

    def tokenize(self, text: str) -> list[str]:
        return [self.stem(w) for w in self.words(text)]

    def term_ids(self, text: str, vocab: dict[str, int], seen: dict[str, int]) -> list[int]:
        """`tokenize` mapped to ids, growing `vocab` (term -> id). `seen` caches raw word -> id (-1: dropped),
        so indexing a corpus costs one dict lookup per word."""
        out = []
        for w in WORD.findall(text.lower()):
            i = seen.get(w)
            if i is None:
                dropped = w in self._stopwords or len(w) > MAX_TOKEN_CHARS
                i = seen[w] = -1 if dropped else vocab.setdefault(self.stem(w), len(vocab))
            if i >= 0:
                out.append(i)
        return out


class FuzzyVocab:
    """Maps an out-of-vocabulary term to the vocabulary terms within one edit (insertion, deletion,
    substitution or adjacent swap), by generating the term's one-edit variants and looking them up.

    No precomputed structure, so nothing to build or load; a lookup costs ~50·len(term) dict probes and
    only happens for words the index has never seen. Terms shorter than `min_chars` are never corrected
    (too many neighbours to mean anything), as in Meilisearch's default typo rules.
    """

    def __init__(self, vocab: dict[str, int], min_chars: int = 4):
        self.vocab, self.min_chars = vocab, min_chars
        self._alphabet: str | None = None
        self._cache: dict[str, list[int]] = {}  # per word, like the stem cache (agents repeat their typos)

    def _edits(self, term: str) -> set[str]:
        if self._alphabet is None:
            self._alphabet = "".join(sorted(set().union(*self.vocab))) if self.vocab else ""
        splits = [(term[:i], term[i:]) for i in range(len(term) + 1)]
        out = {a + b[1:] for a, b in splits if b}
        out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        out |= {a + c + b[1:] for a, b in splits if b for c in self._alphabet}
        out |= {a + c + b for a, b in splits for c in self._alphabet}
        out.discard(term)
        return out

    def candidates(self, term: str) -> list[int]:
        """Vocabulary ids within one edit of `term`, ascending (deterministic)."""
        if len(term) < self.min_chars:
            return []
        found = self._cache.get(term)
        if found is None:
            found = sorted(self.vocab[e] for e in self._edits(term) if e in self.vocab)
            if len(self._cache) < 100_000:
                self._cache[term] = found
        return found
