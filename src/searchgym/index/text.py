"""Tokenisation shared by the numpy BM25 backend and verification, plus typo tolerance.

Lean on purpose: one regex, lower-casing, a short English stop-word list, and a Snowball stemmer whose
results are cached per word (the same few thousand words recur in every query).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Sequence

import numpy as np
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
        self._stemmer = Stemmer.Stemmer("english", 0) if stem else None  # 0: no second cache inside
        self._stopwords = frozenset(stopwords)
        self._cache: dict[str, str] = {}

    def stem(self, word: str) -> str:
        out = self._cache.get(word)
        if out is None:
            out = self._stemmer.stemWord(word) if self._stemmer else word
            if len(self._cache) < 1_000_000:
                self._cache[word] = out
        return out

    def keeps(self, word: str) -> bool:
        """Whether a lower-cased word is indexed at all (not a stop word, not over MAX_TOKEN_CHARS)."""
        return word not in self._stopwords and len(word) <= MAX_TOKEN_CHARS

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
    """Vocabulary terms within one edit (insertion, deletion, substitution or adjacent swap) of a word.

    A deletion index (SymSpell's idea): two strings are within one edit only if one is the other minus a
    character or both give the same string when one character is deleted from each. The index holds the
    crc32 of every indexed word and of each of its one-character deletions (`index`: sorted keys and their
    word ids), built with the index and saved next to it. A lookup hashes the word and its deletions (len + 1
    keys, one binary search) and checks each word found exactly, so a hash collision never matches.

    The indexed words are the vocabulary's terms (stems), then `surface`: the corpus words whose stem differs
    from the word itself, each standing for its stem's term (`surface_terms`). A typo is an edit of the word
    as written, and stemming can move it further: `Taismeasino` is one edit from the corpus word
    `Taismeasion` but four from its stem `taismeas`. Words shorter than `min_chars` are never corrected (too
    many neighbours to mean anything), as in Meilisearch's default typo rules.
    """

    def __init__(
        self,
        vocab: Sequence[str],
        keys: np.ndarray,
        words: np.ndarray,
        min_chars: int = 4,
        surface: Sequence[str] = (),
        surface_terms: Sequence[int] = (),
    ):
        self.vocab, self.keys, self.min_chars = vocab, keys, min_chars
        self.surface, self.surface_terms = surface, surface_terms
        self._cache: dict[tuple[str, ...], list[int]] = {}  # like the stem cache (agents repeat their typos)
        # zero-copy views: indexing them gives Python ints without a numpy call per key found
        self._keys_view, self._words_view = memoryview(keys), memoryview(words)
        self._surface_terms_view = memoryview(np.asarray(surface_terms, dtype=np.int32))

    @staticmethod
    def index(words: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
        """(keys, word ids) sorted by key: the crc32 of every word and of its distinct deletions."""
        keys, ids = [], []
        for i, word in enumerate(words):
            variants = _variants(word)
            keys.extend(_crc(v) for v in variants)
            ids.extend([i] * len(variants))
        keys_a, ids_a = np.asarray(keys, dtype=np.uint32), np.asarray(ids, dtype=np.int32)
        order = np.lexsort((ids_a, keys_a))
        return keys_a[order], ids_a[order]

    def candidates(self, *words: str) -> list[int]:
        """Vocabulary ids within one edit of any of `words` (directly or through a surface word), ascending
        (deterministic): one binary search for the hashes of all their variants."""
        words = tuple(dict.fromkeys(w for w in words if len(w) >= self.min_chars))
        if not words:
            return []
        found = self._cache.get(words)
        if found is None:
            found = self._lookup(words)
            if len(self._cache) < 100_000:
                self._cache[words] = found
        return found

    def neighbours(self, span: tuple[int, int], eligible: Sequence[int]) -> list[list[int]]:
        """For each vocabulary term t in [a, b): if `eligible[t]`, the other terms within one edit of it or of
        a surface word of it (ascending), what a query word that is itself indexed may have been meant as;
        else none."""
        forms: dict[int, list[str]] = {}
        a, b = span
        for w, t in zip(self.surface, self.surface_terms, strict=True):
            if a <= t < b:
                forms.setdefault(int(t), []).append(w)
        out = []
        for t in range(a, b):
            if not eligible[t]:
                out.append([])
                continue
            words = tuple(w for w in (self.vocab[t], *forms.get(t, ())) if len(w) >= self.min_chars)
            out.append([j for j in self._lookup(words) if j != t] if words else [])
        return out

    def _lookup(self, words: tuple[str, ...]) -> list[int]:
        """Vocabulary ids within one edit of any of `words` (each at least `min_chars` long)."""
        owners, probes = [], []
        for w in words:
            variants = _variants(w)
            owners += [w] * len(variants)
            probes += [_crc(v) for v in variants]
        keys, ids, n = self._keys_view, self._words_view, len(self._keys_view)
        pairs = set()  # (word, indexed word id) sharing a key: checked against that word only
        starts = self.keys.searchsorted(np.array(probes, dtype=np.uint32)).tolist()
        for i, key, w in zip(starts, probes, owners, strict=True):
            while i < n and keys[i] == key:  # the run of equal keys (one search instead of two)
                pairs.add((w, ids[i]))
                i += 1
        vocab, surface, surface_terms, nv = (
            self.vocab,
            self.surface,
            self._surface_terms_view,
            len(self.vocab),
        )
        found = set()
        for w, j in pairs:  # most of a build's neighbour pass: kept free of calls
            if j < nv:
                if _one_edit(w, vocab[j]):
                    found.add(j)
            elif _one_edit(w, surface[j - nv]):
                found.add(surface_terms[j - nv])
        return sorted(found)


def _variants(word: str) -> set[str]:
    """`word` and its one-character deletions."""
    return {word, *(word[:j] + word[j + 1 :] for j in range(len(word)))}


def _crc(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _one_edit(a: str, b: str) -> bool:
    """True when b is one insertion, deletion, substitution or adjacent swap away from a."""
    if a == b or abs(len(a) - len(b)) > 1:
        return False
    i, n = 0, min(len(a), len(b))
    while i < n and a[i] == b[i]:
        i += 1
    if len(a) > len(b):
        return a[i + 1 :] == b[i:]
    if len(a) < len(b):
        return a[i:] == b[i + 1 :]
    return a[i + 1 :] == b[i + 1 :] or (a[i : i + 2] == b[i : i + 2][::-1] and a[i + 2 :] == b[i + 2 :])
