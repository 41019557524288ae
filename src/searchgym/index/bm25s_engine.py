"""BM25 over the score matrix built by the `bm25s` library, queried with a lean numpy path.

bm25s computes every (term, document) BM25 weight at index time and stores them as a CSC matrix
(`data`, `indices`, `indptr`); a query is then a sum of a few posting lists. We keep bm25s's index math but
replace its per-query machinery (tokeniser objects, weight masks, a sort over the whole corpus) with cached
stemming, a dict lookup per word and an exact top-k that rarely touches whole posting lists (`_top_k`).
The index also stores each list's weight order (`impact`). Arrays are .npy files: loading never re-tokenises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchgym.config import YamlConfig
from searchgym.index.base import IndexBackend
from searchgym.index.docstore import DocStore
from searchgym.index.text import FuzzyVocab, Tokenizer
from searchgym.io import write_json
from searchgym.types import Document, SearchHit

FIRST_DEPTH = 64  # documents taken from the top of each long posting list on the first pass
DENSE_FRACTION = 0.2  # above this many candidates per document, scoring densely over the corpus is cheaper


@dataclass
class Bm25sConfig(YamlConfig):
    k1: float = 1.5  # bm25s / Lucene defaults
    b: float = 0.75
    title_weight: int = 2  # title words are counted this many times: an entity's own article wins its name
    fuzzy: bool = True  # out-of-vocabulary query words match vocabulary words within one edit
    fuzzy_min_chars: int = 4  # shorter words are never corrected
    fuzzy_weight: float = (
        0.25  # a typo match counts this much of an exact match (Meilisearch ranks exact first)
    )


class Bm25sEngine(IndexBackend):
    name = "bm25s"
    config_class = Bm25sConfig

    def __init__(self, store: DocStore, vocab: list[str], data, indices, indptr, impact, config: Bm25sConfig):
        self.store, self.config = store, config
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.data, self.indices, self.indptr = data, indices, indptr
        self.impact = impact  # positions into data/indices, each term's postings by weight, highest first
        self.tokenizer = Tokenizer()
        self.fuzzy = FuzzyVocab(self.vocab, config.fuzzy_min_chars) if config.fuzzy else None

    # ---- building -------------------------------------------------------------------------------------
    @classmethod
    def from_documents(cls, docs: list[Document], config: Bm25sConfig | None = None) -> Bm25sEngine:
        import bm25s

        config = config or Bm25sConfig()
        tok = Tokenizer()
        vocab: dict[str, int] = {}
        seen: dict[str, int] = {}
        corpus_ids = [
            tok.term_ids(d.title, vocab, seen) * config.title_weight + tok.term_ids(d.text, vocab, seen)
            for d in docs
        ]
        if not vocab:
            vocab[""] = 0  # bm25s needs at least one column; the empty term never matches a query
        model = bm25s.BM25(k1=config.k1, b=config.b, method="lucene")
        m = model.build_index_from_ids(list(range(len(vocab))), corpus_ids, show_progress=False)
        data, indices, indptr, impact = _orders(m["data"], m["indices"], m["indptr"])
        return cls(DocStore.from_documents(docs), list(vocab), data, indices, indptr, impact, config)

    @classmethod
    def build_into(cls, docs: list[Document], directory: Path, config: Bm25sConfig | None = None) -> None:
        cls.from_documents(docs, config).save(directory)

    def save(self, directory: Path) -> None:
        self.store.save(directory)
        np.save(directory / "data.npy", np.asarray(self.data, dtype=np.float32))
        np.save(directory / "indices.npy", np.asarray(self.indices, dtype=np.int32))
        np.save(directory / "indptr.npy", np.asarray(self.indptr, dtype=np.int64))
        np.save(directory / "impact.npy", np.asarray(self.impact, dtype=_position_dtype(len(self.data))))
        (directory / "vocab.json").write_text(json.dumps(list(self.vocab), ensure_ascii=False))
        write_json(directory / "config.json", self.config.to_dict())

    @classmethod
    def load(cls, directory: Path, **overrides) -> Bm25sEngine:
        config = Bm25sConfig.from_dict({**json.loads((directory / "config.json").read_text()), **overrides})
        # read whole (~50 MB for 100k documents, tens of ms): memory-mapping would fault pages in one by
        # one during the first queries, which costs more than reading them up front
        arrays = [np.load(directory / f"{n}.npy") for n in ("data", "indices", "indptr", "impact")]
        vocab = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        return cls(DocStore.load(directory), vocab, *arrays, config)

    # ---- querying -------------------------------------------------------------------------------------
    def query_terms(self, query: str) -> dict[int, float]:
        """Term id -> weight: 1 per occurrence of a known word, `fuzzy_weight` for each one-edit neighbour of
        an unknown word (so a typo match never outranks an exact one on a rare word)."""
        terms: dict[int, float] = {}
        for word in self.tokenizer.words(query):
            stem = self.tokenizer.stem(word)
            i = self.vocab.get(stem)
            if i is not None:
                terms[i] = terms.get(i, 0.0) + 1.0
            elif self.fuzzy is not None:
                for j in set(self.fuzzy.candidates(word)) | set(self.fuzzy.candidates(stem)):
                    terms[j] = terms.get(j, 0.0) + self.config.fuzzy_weight
        return terms

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        terms = self.query_terms(query)
        if not terms or k < 1:
            return []
        docs, scores = self._top_k(terms, k)
        return [self.store.hit(int(d), float(s)) for d, s in zip(docs, scores, strict=True)]

    def _posting(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        s, e = self.indptr[t], self.indptr[t + 1]
        return self.indices[s:e], self.data[s:e]

    def _top_k(self, query_terms: dict[int, float], k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact BM25 top-k without scoring every posting list in full.

        1. Threshold pass: candidates are the first FIRST_DEPTH documents of each posting list in weight
           order (all of a short list), scored exactly by binary search in each doc-ordered list. Their k-th
           score is a floor that the true top-k reaches. A document outside the candidates scores at most
           the sum of the lists' cut-off weights; if that is below the floor, the candidates hold the top-k.
        2. MaxScore: otherwise, the lists with the smallest maximum weights whose maxima sum below the floor
           cannot lift a document into the top-k on their own, so candidates come only from the other lists.
        3. If those lists are still long, accumulate them densely over the corpus.
        Ties break by document order, so results are deterministic.
        """
        terms = np.fromiter(query_terms, dtype=np.int64, count=len(query_terms))
        counts = np.fromiter(query_terms.values(), dtype=np.float32, count=len(query_terms))
        starts, lengths = self.indptr[terms], self.indptr[terms + 1] - self.indptr[terms]
        postings = [self._posting(int(t)) for t in terms]
        take = np.minimum(lengths, max(k, FIRST_DEPTH))
        parts = [self.indices[self.impact[s : s + n]] for s, n in zip(starts, take, strict=True)]
        cands = _union(parts)
        scores = self._exact(cands, postings, counts)
        cut = take < lengths
        if not cut.any():
            return _ranked(cands, scores, k)
        floor = np.float32(0.0)
        if len(cands) >= k:
            floor = np.partition(scores, len(cands) - k)[len(cands) - k]  # k documents score at least this
            tail = (self.data[self.impact[starts[cut] + take[cut] - 1]] * counts[cut]).sum()
            if tail < floor:
                return _ranked(cands, scores, k)
        upper = self.data[self.impact[starts]] * counts  # each list's largest contribution
        by_upper = np.argsort(upper, kind="stable")
        skip = int(np.searchsorted(np.cumsum(upper[by_upper]), floor)) if floor > 0 else 0
        essential = np.sort(by_upper[skip:])
        if lengths[essential].sum() <= DENSE_FRACTION * len(self.store):
            cands = _union([postings[j][0] for j in essential])
            return _ranked(cands, self._exact(cands, postings, counts), k)
        acc = np.zeros(len(self.store), dtype=np.float32)
        for (docs, weights), c in zip(postings, counts, strict=True):
            acc[docs] += weights * np.float32(c)  # a document occurs once per posting list
        top = np.flatnonzero(acc >= floor) if floor > 0 else np.flatnonzero(acc)
        return _ranked(top, acc[top], k)

    @staticmethod
    def _exact(cands: np.ndarray, postings, counts) -> np.ndarray:
        scores = np.zeros(len(cands), dtype=np.float32)
        for (docs, weights), c in zip(postings, counts, strict=True):
            pos = np.minimum(np.searchsorted(docs, cands), len(docs) - 1)
            scores += np.where(docs[pos] == cands, weights[pos], 0.0) * c
        return scores

    def __len__(self) -> int:
        return len(self.store)

    def access(self, url: str) -> Document | None:
        return self.store.access(url)


def _union(parts: list[np.ndarray]) -> np.ndarray:
    """Sorted distinct document ids (np.unique's hash path is several times slower on these arrays)."""
    a = np.concatenate(parts)
    a.sort()
    keep = np.empty(len(a), dtype=bool)
    keep[:1] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def _ranked(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((docs, -scores))[:k]  # score descending, then document order
    return docs[order], scores[order]


def _position_dtype(n: int) -> type:
    return np.int32 if n < 2**31 else np.int64


def _orders(data, indices, indptr) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Posting lists sorted by document (for binary search) and each list's weight order (for top-m)."""
    data, indices, indptr = (np.asarray(a) for a in (data, indices, indptr))
    indptr = indptr.astype(np.int64)
    column = np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
    unsorted = (np.diff(indices) <= 0) & (np.diff(column) == 0)
    if unsorted.any():  # bm25s emits lists in document order already; sort only if that ever changes
        by_doc = np.lexsort((indices, column))
        data, indices = data[by_doc], indices[by_doc]
    data, indices = data.astype(np.float32), indices.astype(np.int32)
    impact = np.lexsort((-data, column)).astype(_position_dtype(len(data)))  # stable: ties in document order
    return data, indices, indptr, impact
