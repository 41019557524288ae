"""BM25 over a precomputed score matrix (bm25s's index math), queried with an exact top-k in a few numpy calls.

Every (term, document) BM25 weight is computed at index time with Lucene's formula, bit for bit as the `bm25s`
library computes it (`lucene_weights`); a query's score for a document is then a sum of one weight per query
term. bm25s's per-query machinery (tokeniser objects, a dense score vector over the whole corpus) is replaced by
cached stemming, a dict lookup per word and the threshold algorithm over two layouts of every posting list:

- `docs` / `weights`: each list in document order, followed by a sentinel (document `num_docs`, weight 0), so a
  binary search for any document lands on a valid slot and finds its weight in that list, or 0;
- `impact_docs` / `impact_weights`: the first `impact_depth` postings of every list longer than `WHOLE_LIST`,
  in weight order (ties in document order).

`_top_k` runs in the C kernel `_bm25kernel` (built by `pip install`, `_bm25kernel.c`: the same passes in one
call, bit for bit the same results) when it is importable, else in numpy; SEARCHGYM_NO_KERNEL=1 forces numpy.
Arrays are .npy files, memory-mapped at load; nothing is compiled, tokenised or warmed up at run time. The
vocabulary too: `vocab.bin` / `vocab.npy` (terms in id order, UTF-8, and their offsets) and `vocab_hashes.npy` /
`vocab_order.npy` (`HashIndex`: sorted crc32 of the terms, term ids in that order), so a query word is found by
one binary search and opening builds no 1M-entry dict.
"""

from __future__ import annotations

import json
import math
import os
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from searchgym.config import YamlConfig
from searchgym.index.base import IndexBackend
from searchgym.index.docstore import DocStore, HashIndex, Strings, read_strings, write_strings
from searchgym.index.text import WORD, FuzzyVocab, Tokenizer
from searchgym.io import write_json
from searchgym.parallel import fork_map, shared, spans
from searchgym.types import Document, SearchHit

PARALLEL_DOCS = 20_000  # corpora this large are tokenised in forked workers (a fork pool costs ~0.1 s)
WHOLE_LIST = 1024  # lists this short are always read whole: cheaper than bounding them (measured)
# only words in at most this many documents (names, not common words) get one-edit neighbours: the same recall
# on the bench's typo queries at 100k and 1M documents, 15-30 % less query time than neighbours for every word
NEAR_MAX_DF = WHOLE_LIST
FIRST_DEPTH = 16  # postings taken from the top of each longer list on the first pass
SMALL = 256  # first passes with at most this many candidate postings run in plain Python (`_ranked_small`)
SORT_IN_PYTHON = 64  # `_ranked` sorts at most this many finalists in Python (fewer numpy calls)
# Relative costs (measured on 100k documents) for choosing the second pass: merging one posting into the
# candidates, one binary search of a candidate in one list, adding one posting to a corpus-wide sum and
# scanning one document of that sum.
MERGE, LOOKUP, DENSE_POSTING, DENSE_DOC = 20.0, 25.0, 5.0, 1.6


def _load_kernel():
    """The compiled top-k module, or None (not built, or SEARCHGYM_NO_KERNEL=1)."""
    if os.environ.get("SEARCHGYM_NO_KERNEL", "") not in ("", "0"):
        return None
    try:
        from searchgym.index import _bm25kernel
    except ImportError:
        return None
    return _bm25kernel


KERNEL = _load_kernel()
ARRAYS = ("docs", "weights", "starts", "impact_docs", "impact_weights", "impact_starts")
# FuzzyVocab's deletion index (keys, indexed word ids), the term of each surface word, and each term's one-edit
# neighbours (`near_terms[near_starts[t]:near_starts[t + 1]]`, Bm25sConfig.near_weight)
FUZZY_ARRAYS = ("fuzzy_keys", "fuzzy_words", "fuzzy_surface_terms", "near_starts", "near_terms")


class Vocab:
    """Term ids: `terms[i]` is term i; `get` finds a term's id through `index` (a `HashIndex` of the terms)."""

    def __init__(self, terms: Sequence[str], index: HashIndex) -> None:
        self.terms, self.index = terms, index

    @classmethod
    def of(cls, terms: list[str]) -> Vocab:
        return cls(terms, HashIndex.of(terms))

    def get(self, term: str) -> int | None:
        return self.index.find(term)

    def __getitem__(self, i: int) -> str:
        return self.terms[i]

    def __len__(self) -> int:
        return len(self.terms)

    def __iter__(self) -> Iterator[str]:
        return iter(self.terms)


@dataclass
class Bm25sConfig(YamlConfig):
    k1: float = 1.5  # bm25s / Lucene defaults
    b: float = 0.75
    title_weight: int = 2  # title words are counted this many times: an entity's own article wins its name
    fuzzy: bool = True  # out-of-vocabulary query words match vocabulary words within one edit
    fuzzy_min_chars: int = 4  # shorter words are never corrected
    fuzzy_weight: float = (
        0.5  # a typo match counts this much of an exact match (Meilisearch ranks exact first)
    )
    # a word in the vocabulary also matches its one-edit neighbours at this weight (0: never): a typo can land
    # on another indexed word, which in a 1M-entity world is the usual case for a misspelt name. Query weights
    # that are powers of two keep every float64 score sum exact, so the kernel and numpy paths agree bit for bit
    near_weight: float = 0.125
    # postings kept in weight order per long list; a query that needs more reads the list whole. Speed
    # only: results are exact at any depth.
    impact_depth: int = 4096


class Bm25sEngine(IndexBackend):
    name = "bm25s"
    config_class = Bm25sConfig

    def __init__(
        self,
        store: DocStore,
        vocab: Vocab,
        arrays: dict[str, np.ndarray],
        config: Bm25sConfig,
        surface: Sequence[str],
    ):
        """`surface`: the corpus words whose stem is not the word itself (typo matching, `FuzzyVocab`)."""
        self.store, self.config, self.vocab, self.surface = store, config, vocab, surface
        for name in ARRAYS + FUZZY_ARRAYS:
            setattr(self, name, arrays[name])
        starts, impact_starts = arrays["starts"], arrays["impact_starts"]
        # per term: [first posting, postings (sentinel excluded), first impact posting, impact postings]
        self.meta = np.stack(
            [starts[:-1], np.diff(starts) - 1, impact_starts[:-1], np.diff(impact_starts)], axis=1
        )
        self.num_docs = len(store)
        self.tokenizer = Tokenizer()
        self.fuzzy = (
            FuzzyVocab(
                vocab,
                arrays["fuzzy_keys"],
                arrays["fuzzy_words"],
                config.fuzzy_min_chars,
                surface,
                arrays["fuzzy_surface_terms"],
            )
            if config.fuzzy
            else None
        )
        self._near_starts, self._near_terms = (
            memoryview(arrays["near_starts"]),
            memoryview(arrays["near_terms"]),
        )
        self._terms: dict[str, tuple[tuple[int, float], ...]] = {}  # query word -> weighted term ids
        # term id -> its `meta` row (a dict lookup beats numpy indexing)
        self._rows: dict[int, list[int]] = {}
        self.kernel = None if KERNEL is None else KERNEL.Index(*(arrays[n] for n in ARRAYS), self.num_docs)

    # ---- building -------------------------------------------------------------------------------------
    @classmethod
    def from_documents(
        cls, docs: list[Document], config: Bm25sConfig | None = None, workers: int | None = None
    ) -> Bm25sEngine:
        """`workers`: processes tokenising the corpus (None: the machine's cores for corpora of PARALLEL_DOCS
        documents or more, else 1); the index is the same for any number."""
        config = config or Bm25sConfig()
        workers = build_workers(workers, len(docs))
        vocab, surface, ids, lengths = tokenize_corpus(docs, config.title_weight, workers)
        if not vocab:
            vocab[""] = 0  # bm25s needs at least one column; the empty term never matches a query
        data, indices, indptr = lucene_weights(ids, lengths, len(vocab), config.k1, config.b)
        del ids
        arrays = _arrays(data, indices, indptr, len(docs), config.impact_depth)
        arrays["fuzzy_keys"], arrays["fuzzy_words"] = FuzzyVocab.index([*vocab, *surface])
        arrays["fuzzy_surface_terms"] = np.fromiter(surface.values(), dtype=np.int32, count=len(surface))
        fuzzy = FuzzyVocab(
            list(vocab),
            arrays["fuzzy_keys"],
            arrays["fuzzy_words"],
            config.fuzzy_min_chars,
            list(surface),
            arrays["fuzzy_surface_terms"],
        )
        df = np.diff(arrays["starts"]) - 1  # postings per term (a sentinel ends each list)
        arrays["near_starts"], arrays["near_terms"] = neighbour_lists(fuzzy, df, workers)
        return cls(DocStore.from_documents(docs), Vocab.of(list(vocab)), arrays, config, list(surface))

    @classmethod
    def build_into(cls, docs: list[Document], directory: Path, config: Bm25sConfig | None = None) -> None:
        cls.from_documents(docs, config).save(directory)

    def save(self, directory: Path) -> None:
        self.store.save(directory)
        for name in ARRAYS + FUZZY_ARRAYS:
            np.save(directory / f"{name}.npy", getattr(self, name))
        write_strings(directory / "vocab.bin", directory / "vocab.npy", [t.encode() for t in self.vocab])
        write_strings(
            directory / "surface.bin", directory / "surface.npy", [w.encode() for w in self.surface]
        )
        self.vocab.index.save(directory / "vocab_hashes.npy", directory / "vocab_order.npy")
        write_json(directory / "config.json", self.config.to_dict())

    @classmethod
    def load(cls, directory: Path, **overrides) -> Bm25sEngine:
        config = Bm25sConfig.from_dict({**json.loads((directory / "config.json").read_text()), **overrides})
        # memory-mapped: opening costs nothing, and a query faults in only the pages it reads (load_engine's
        # integrity check has read every file, or found its hash cached); 0.46 s less at 1M
        arrays = {n: np.load(directory / f"{n}.npy", mmap_mode="r") for n in ARRAYS + FUZZY_ARRAYS}
        terms = Strings(*read_strings(directory / "vocab.bin", directory / "vocab.npy"))
        index = HashIndex.load(terms, directory / "vocab_hashes.npy", directory / "vocab_order.npy")
        vocab = Vocab(terms, index)
        surface = Strings(*read_strings(directory / "surface.bin", directory / "surface.npy"))
        return cls(DocStore.load(directory), vocab, arrays, config, surface)

    # ---- querying -------------------------------------------------------------------------------------
    def _word_terms(self, word: str) -> tuple[tuple[int, float], ...]:
        """A lower-cased query word's weighted term ids: none for a stop word; its stem (weight 1) if indexed,
        plus the stem's one-edit neighbours at `near_weight` (a typo can be another word; rare terms only);
        else every vocabulary term within one edit of the word or its stem at `fuzzy_weight`."""
        if not self.tokenizer.keeps(word):
            return ()
        stem = self.tokenizer.stem(word)
        i = self.vocab.get(stem)
        if self.fuzzy is None or (i is not None and not self.config.near_weight):
            return () if i is None else ((i, 1.0),)
        if i is None:
            return tuple((j, self.config.fuzzy_weight) for j in self.fuzzy.candidates(word, stem))
        near = self._near_terms[self._near_starts[i] : self._near_starts[i + 1]].tolist()
        return ((i, 1.0), *((j, self.config.near_weight) for j in near))

    def query_terms(self, query: str) -> dict[int, float]:
        """Term id -> weight summed over the query's words."""
        terms: dict[int, float] = {}
        cache = self._terms
        for word in WORD.findall(query.lower()):
            found = cache.get(word)
            if found is None:
                found = self._word_terms(word)
                if len(cache) < 1_000_000:
                    cache[word] = found
            for i, w in found:
                terms[i] = terms.get(i, 0.0) + w
        return terms

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        terms = self.query_terms(query)
        if not terms or k < 1:
            return []
        return self.store.hits(*self._top_k(terms, k))

    def rank(self, query: str, k: int = 5) -> list[tuple[str, float]]:
        """(doc id, score) of `search`'s hits without reading their texts (verification needs no more)."""
        terms = self.query_terms(query)
        if not terms or k < 1:
            return []
        docs, scores = self._top_k(terms, k)
        return list(zip(self.store.doc_ids(docs), scores, strict=True))

    def _posting(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Documents (ascending) and weights of term `t`'s posting list."""
        s, n = int(self.meta[t, 0]), int(self.meta[t, 1])
        return self.docs[s : s + n], self.weights[s : s + n]

    def _meta_rows(self, terms: list[int]) -> list[list[int]]:
        rows, out = self._rows, []
        for t in terms:
            row = rows.get(t)
            if row is None:
                row = self.meta[t].tolist()
                if len(rows) < 1_000_000:
                    rows[t] = row
            out.append(row)
        return out

    def _top_k(self, query_terms: dict[int, float], k: int) -> tuple[list[int], list[float]]:
        """Exact BM25 top-k (score descending, then document order) without reading long lists whole.

        Short lists (no weight-ordered head) are read whole. If their documents settle the top-k alone
        (`_settled`), that is the answer. Else the first pass takes as candidates every document of the short
        lists and the first FIRST_DEPTH documents of each long list in weight order, all scored exactly.
        Their k-th score is a floor that the true top-k reaches. A document outside the candidates scores at
        most the sum of the weights at which the long lists were cut (the bound); if that is below the floor,
        the candidates hold the top-k. Otherwise `_plan` picks, knowing the floor, how deep to read each long
        list (or whether to read them all), and that second pass is final. The C kernel, when loaded, does
        the same in one call (`_bm25kernel.c`).
        """
        if self.kernel is not None:
            return self.kernel.top_k(query_terms, k)
        terms = sorted(query_terms)
        counts = [query_terms[t] for t in terms]
        meta = self._meta_rows(terms)
        short = [j for j, m in enumerate(meta) if m[3] == 0]
        long = [j for j, m in enumerate(meta) if m[3] > 0]
        if len(terms) == 1 and long and k <= meta[0][3]:  # one list: its top-k heads its weight order
            s, c = meta[0][2], counts[0]
            return self.impact_docs[s : s + k].tolist(), [
                w * c for w in self.impact_weights[s : s + k].tolist()
            ]
        depth = [min(max(k, FIRST_DEPTH), meta[j][3]) for j in long]
        in_short = sum(meta[j][1] for j in short)
        if in_short <= SMALL:
            partial: dict[int, float] = {}
            for j in short:
                s, n, c = meta[j][0], meta[j][1], counts[j]
                for d, w in zip(self.docs[s : s + n].tolist(), self.weights[s : s + n].tolist(), strict=True):
                    partial[d] = partial.get(d, 0.0) + w * c
            if not long:
                return _best(partial, k)
            if len(partial) >= k:
                found = self._settled(partial, meta, counts, long, k)
                if found is not None:
                    return found
            if in_short + sum(depth) <= SMALL:
                docs, scores = self._ranked_small(partial, meta, counts, long, depth, k)
            else:
                docs, scores = _ranked(*self._score(meta, counts, short, long, depth), k)
        else:
            if long:
                found = self._settled_numpy(meta, counts, short, long, k)
                if found is not None:
                    return found
            docs, scores = _ranked(*self._score(meta, counts, short, long, depth), k)
            if not long:
                return docs, scores
        floor = scores[-1] if len(scores) == k else 0.0
        if self._bound(meta, counts, long, depth) < floor:
            return docs, scores
        plan = self._plan(meta, counts, short, long, floor)
        if plan is None:
            return self._dense(meta, counts, floor, k)
        return _ranked(*self._score(meta, counts, *plan), k)

    def _upper(self, meta: list, counts: list[float], long: list[int]) -> float:
        """The most a document in none of the short lists can score: the long lists' largest weights summed
        (raised by a part in a billion: the same sum in another order may differ in its last bit, and keeping
        more candidates is always exact)."""
        upper = 0.0
        for j in long:
            upper += float(self.impact_weights[meta[j][2]]) * counts[j]
        return upper * (1 + 1e-9)

    def _settled(
        self, partial: dict[int, float], meta: list, counts: list[float], long: list[int], k: int
    ) -> tuple[list[int], list[float]] | None:
        """The top-k when the short lists decide it, else None (MaxScore's test on the short lists alone).

        `partial` holds the short lists' documents scored on those lists only; its k-th score `lo` is a floor
        the k-th result reaches. If `_upper` is below `lo`, the top-k are among these documents, and only
        those whose partial score plus `_upper` reaches `lo` are looked up in the long lists."""
        upper = self._upper(meta, counts, long)
        lo = sorted(partial.values(), reverse=True)[k - 1]
        if upper >= lo:
            return None
        docs = [d for d, p in partial.items() if p + upper >= lo]
        totals = [partial[d] for d in docs]
        cands = np.array(docs, dtype=np.int32)
        for j in long:
            c = counts[j]
            for i, w in enumerate(self._lookup(meta[j], cands).tolist()):
                if w:
                    totals[i] += w * c
        return _best(dict(zip(docs, totals, strict=True)), k)

    def _settled_numpy(
        self, meta: list, counts: list[float], short: list[int], long: list[int], k: int
    ) -> tuple[list[int], list[float]] | None:
        """`_settled` for short lists too long to merge in Python."""
        cands, partial = self._score(meta, counts, short, [], [])
        if len(cands) < k:
            return None
        upper = self._upper(meta, counts, long)
        lo = float(np.partition(partial, len(cands) - k)[len(cands) - k])
        if upper >= lo:
            return None
        keep = partial + upper >= lo
        cands, partial = cands[keep], partial[keep]
        for j in long:
            partial += self._lookup(meta[j], cands) * counts[j]
        return _ranked(cands, partial, k)

    def _lookup(self, row: list[int], cands: np.ndarray) -> np.ndarray:
        """The weights (0 where absent) of documents `cands` in the list of `meta` row `row`."""
        s, n = row[0], row[1] + 1  # with the sentinel
        docs = self.docs[s : s + n]
        pos = docs.searchsorted(cands)
        w = self.weights[s : s + n][pos].astype(np.float64)
        w[docs[pos] != cands] = 0.0
        return w

    def _bound(self, meta: list, counts: list[float], cut: list[int], depth: list[int]) -> float:
        """The most a document outside the first `depth[i]` postings of every list `cut[i]` can score there."""
        bound = 0.0
        for j, d in zip(cut, depth, strict=True):
            s, df, head = meta[j][2], meta[j][1], meta[j][3]
            if d < df:  # past the stored head, every weight is at most the head's last one
                bound += float(self.impact_weights[s + min(d, head - 1)]) * counts[j]
        return bound

    def _plan(
        self, meta: list, counts: list[float], short: list[int], long: list[int], floor: float
    ) -> tuple[list[int], list[int], list[int]] | None:
        """The cheapest second pass whose bound is below `floor`: (lists read whole, lists cut, their
        depths), or None when accumulating every list over the corpus (`_dense`) costs less.

        Water-filling: the floor is shared among the long lists; a list whose largest weight is below its
        share needs no candidates of its own (depth 0: it is only looked up), every other one is read down
        to where its weights fall below the share, or whole if that is past its stored head.
        """
        uppers = sorted((float(self.impact_weights[meta[j][2]]) * counts[j], j) for j in long)
        budget, left, cut, depth = floor, len(uppers), [], []
        for upper, j in uppers:
            if upper * left >= budget:
                break
            cut.append(j)
            depth.append(0)
            budget, left = budget - upper, left - 1
        whole = list(short)
        share = budget / left if left else 0.0
        for _, j in uppers[len(cut) :]:
            s, head = meta[j][2], meta[j][3]
            # impact weights descend: count those at least share / count (the reversed view ascends)
            m = head - int(np.searchsorted(self.impact_weights[s : s + head][::-1], share / counts[j]))
            while m < head and float(self.impact_weights[s + m]) * counts[j] >= share:  # float rounding
                m += 1
            if m < head:
                cut.append(j)
                depth.append(m)
            else:
                whole.append(j)
        postings = sum(m[1] for m in meta)
        costs = {
            "lists": (sum(meta[j][1] for j in whole) + sum(depth)) * (MERGE + LOOKUP * len(cut)),
            "all": postings * MERGE,
            "dense": postings * DENSE_POSTING + self.num_docs * DENSE_DOC,
        }
        best = min(costs, key=costs.__getitem__)
        if best == "lists" and self._bound(meta, counts, cut, depth) < floor:
            return whole, cut, depth
        return (list(range(len(meta))), [], []) if best == "all" else None

    def _dense(self, meta: list, counts: list[float], floor: float, k: int) -> tuple[list[int], list[float]]:
        """Every list summed over the whole corpus (one bincount); only documents at or above `floor`, a
        score the k-th result reaches, are ranked."""
        docs = np.concatenate([self.docs[m[0] : m[0] + m[1]] for m in meta])
        weights = np.concatenate(
            [
                self.weights[m[0] : m[0] + m[1]].astype(np.float64) * c
                for m, c in zip(meta, counts, strict=True)
            ]
        )
        scores = np.bincount(docs, weights, self.num_docs)
        top = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores)
        return _ranked(top, scores[top], k)

    def _score(
        self, meta: list, counts: list[float], whole: list[int], cut: list[int], depth: list[int]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Distinct candidates (ascending) and their exact scores: every document of the `whole` lists and
        the first `depth[i]` documents in weight order of each list `cut[i]`. Whole lists add their weights
        through one stable sort, cut lists are looked up by binary search. Weights are float32 and scores
        float64 sums of at most a few dozen of them: exact, so every order of summation gives the same."""
        parts = [self.docs[meta[j][0] : meta[j][0] + meta[j][1]] for j in whole]
        heads = [self.impact_docs[meta[j][2] : meta[j][2] + d] for j, d in zip(cut, depth, strict=True) if d]
        weights = None  # the whole lists' weights times their counts in one float64 array (few numpy calls)
        if parts:
            weights = np.concatenate([self.weights[meta[j][0] : meta[j][0] + meta[j][1]] for j in whole])
            weights = weights.astype(np.float64)
            if any(counts[j] != 1.0 for j in whole):
                weights *= np.repeat([counts[j] for j in whole], [meta[j][1] for j in whole])
        if len(parts) == 1 and not heads:
            cands, scores = parts[0], weights
        else:
            found = np.concatenate(parts + heads)
            order = found.argsort(kind="stable")
            found = found[order]
            new = np.empty(len(found), dtype=bool)
            new[:1] = True
            np.not_equal(found[1:], found[:-1], out=new[1:])
            cands = found[new]
            if weights is not None:
                if heads:  # head postings add nothing here: the lookups below score them
                    weights = np.concatenate([weights, np.zeros(len(found) - len(weights))])
                scores = np.bincount(np.cumsum(new), weights[order], len(cands) + 1)[1:]
            else:
                scores = np.zeros(len(cands))
        for j in cut:
            s, n = meta[j][0], meta[j][1] + 1  # with the sentinel
            docs = self.docs[s : s + n]
            pos = docs.searchsorted(cands)
            w = self.weights[s : s + n][pos].astype(np.float64)
            w[docs[pos] != cands] = 0.0
            scores += w * counts[j] if counts[j] != 1.0 else w
        return cands, scores

    def _ranked_small(
        self,
        partial: dict[int, float],
        meta: list,
        counts: list[float],
        cut: list[int],
        depth: list[int],
        k: int,
    ) -> tuple[list[int], list[float]]:
        """`_ranked(*_score(...), k)` for a few dozen candidates, in Python (a numpy call costs about as much
        as handling twenty candidates): `partial`, the short lists' scores, plus the first `depth[i]`
        documents in weight order of each list `cut[i]`, looked up in every cut list. Updates `partial`."""
        scores = partial
        for j, d in zip(cut, depth, strict=True):
            for doc in self.impact_docs[meta[j][2] : meta[j][2] + d].tolist():
                scores.setdefault(doc, 0.0)
        cands = np.fromiter(scores, dtype=np.int32, count=len(scores))
        for j in cut:
            s, n, c = meta[j][0], meta[j][1] + 1, counts[j]
            docs = self.docs[s : s + n]
            pos = docs.searchsorted(cands)
            found_docs, weights = docs[pos].tolist(), self.weights[s : s + n][pos].tolist()
            for d, found, w in zip(scores, found_docs, weights, strict=True):
                if found == d:
                    scores[d] += w * c
        return _best(scores, k)

    def __len__(self) -> int:
        return len(self.store)

    def access(self, url: str) -> Document | None:
        return self.store.access(url)


def _best(scores: dict[int, float], k: int) -> tuple[list[int], list[float]]:
    """`_ranked` for a dict of document -> score."""
    if len(scores) > k:  # the k-th best score in C, then a sort of the few at or above it
        floor = sorted(scores.values(), reverse=True)[k - 1]
        top = sorted([(-s, d) for d, s in scores.items() if s >= floor])[:k]
    else:
        top = sorted([(-s, d) for d, s in scores.items()])
    return [d for _, d in top], [-s for s, _ in top]


def _ranked(docs: np.ndarray, scores: np.ndarray, k: int) -> tuple[list[int], list[float]]:
    """The k best (score descending, then document order)."""
    if len(docs) > k:
        keep = np.flatnonzero(scores >= np.partition(scores, len(docs) - k)[len(docs) - k])
        docs, scores = docs[keep], scores[keep]
    if len(docs) > SORT_IN_PYTHON:  # many ties at the k-th score
        order = np.lexsort((docs, -scores))[:k]
        return docs[order].tolist(), scores[order].tolist()
    top = sorted(zip([-s for s in scores.tolist()], docs.tolist(), strict=True))[:k]
    return [d for _, d in top], [-s for s, _ in top]


def lucene_weights(
    ids: np.ndarray, lengths: np.ndarray, num_terms: int, k1: float, b: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (term, document) BM25 weight as a CSC matrix (data float32, document ids, indptr) of a corpus given as
    its documents' term ids back to back (`ids`) and their counts (`lengths`): bit for bit what bm25s 0.3.16's
    `build_index_from_ids(method="lucene")` computes, in a few vectorised passes instead of a Counter per document
    (7x faster at 100k documents). Same float steps as bm25s: idf = log(1 + (N - df + 0.5) / (df + 0.5)) by
    `math.log`, rounded to float32; tfc = tf / (k1 (1 - b + b len / avg len) + tf) in float64; weight = idf * tfc
    rounded to float32."""
    num_docs = len(lengths)
    key = ids.astype(np.int64)
    key *= num_docs  # (term, document) as one sortable int64: columns, then rows in document order
    key += np.repeat(np.arange(num_docs, dtype=np.int64), lengths)
    key, tf = np.unique(key, return_counts=True)
    term, doc = np.divmod(key, max(num_docs, 1))
    del key
    df = np.bincount(term, minlength=num_terms)
    distinct, which = np.unique(df, return_inverse=True)  # a few thousand distinct document frequencies
    idf = np.array([math.log(1 + (num_docs - f + 0.5) / (f + 0.5)) if f else 0.0 for f in distinct.tolist()],
                   dtype=np.float32)[which]  # fmt: skip
    tf64 = tf.astype(np.float64)
    norm = k1 * ((1 - b) + b * lengths[doc] / (lengths.mean() if num_docs else 1.0))
    weights = (idf[term].astype(np.float64) * (tf64 / (norm + tf64))).astype(np.float32)
    indptr = np.zeros(num_terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    return weights, doc.astype(np.int32), indptr


def _tokenize_span(
    span: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, list[str], list[tuple[str, int]]]:
    """Term ids (back to back), lengths, the local vocabulary (first-occurrence order) and the surface words
    (word, local term id; first-occurrence order) of documents [a, b)."""
    docs, title_weight = shared()["docs"], shared()["title_weight"]
    tok, vocab, seen = Tokenizer(), {}, {}
    ids, lengths = array("i"), array("q")
    for d in docs[span[0] : span[1]]:
        row = tok.term_ids(d.title, vocab, seen) * title_weight + tok.term_ids(d.text, vocab, seen)
        ids.extend(row)
        lengths.append(len(row))
    terms = list(vocab)
    surface = [(w, i) for w, i in seen.items() if i >= 0 and terms[i] != w]
    return np.frombuffer(ids, dtype=np.int32), np.frombuffer(lengths, dtype=np.int64), terms, surface


def tokenize_corpus(
    docs: list[Document], title_weight: int, workers: int | None = None
) -> tuple[dict[str, int], dict[str, int], np.ndarray, np.ndarray]:
    """(vocabulary term -> id in first-occurrence order, surface word -> its term's id for the corpus words
    whose stem is not the word itself, term ids back to back, document lengths). Spans of documents are
    tokenised in forked workers and their local vocabularies merged in span order, which assigns every term the
    id a single pass over the corpus would: the output never depends on `workers`."""
    n = len(docs)
    workers = build_workers(workers, n)
    vocab: dict[str, int] = {}
    surface: dict[str, int] = {}
    ids, lengths = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=np.int64)]
    parts = fork_map(
        _tokenize_span, spans(n, -(-n // max(workers, 1))), workers, docs=docs, title_weight=title_weight
    )
    for local_ids, local_lengths, local_vocab, local_surface in parts:
        to_global = np.array([vocab.setdefault(t, len(vocab)) for t in local_vocab], dtype=np.int64)
        for w, i in local_surface:
            surface.setdefault(w, int(to_global[i]))
        ids.append(to_global[local_ids])
        lengths.append(local_lengths)
    return vocab, surface, np.concatenate(ids), np.concatenate(lengths)


def _neighbours_span(span: tuple[int, int]) -> list[list[int]]:
    return shared()["fuzzy"].neighbours(span, shared()["eligible"])


def build_workers(workers: int | None, num_docs: int) -> int:
    """Processes for an index build's forked passes: `workers`, or None: the machine's cores (at most 8) for
    corpora of PARALLEL_DOCS documents or more, else 1."""
    if workers is not None:
        return workers
    return min(os.cpu_count() or 1, 8) if num_docs >= PARALLEL_DOCS else 1


def neighbour_lists(fuzzy: FuzzyVocab, df: np.ndarray, workers: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, terms): the one-edit neighbours (`FuzzyVocab.neighbours`) of every vocabulary term in at most
    NEAR_MAX_DF documents (`df`: documents per term; other terms get none), back to back; computed in
    `workers` forked processes (the same arrays for any number)."""
    n = len(fuzzy.vocab)
    eligible = memoryview(np.asarray(df <= NEAR_MAX_DF, dtype=np.uint8))
    chunks = spans(n, -(-n // max(workers, 1)))
    lists = [
        row
        for part in fork_map(_neighbours_span, chunks, workers, fuzzy=fuzzy, eligible=eligible)
        for row in part
    ]
    starts = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(r) for r in lists], out=starts[1:])
    terms = np.fromiter((j for r in lists for j in r), dtype=np.int32, count=int(starts[-1]))
    return starts, terms


def _arrays(data, indices, indptr, num_docs: int, depth: int) -> dict[str, np.ndarray]:
    """The engine's arrays from a CSC matrix (one column per term, rows in document order)."""
    data, indices = np.asarray(data, dtype=np.float32), np.asarray(indices, dtype=np.int32)
    indptr = np.asarray(indptr, dtype=np.int64)
    df = np.diff(indptr)
    column = np.repeat(np.arange(len(df), dtype=np.int64), df)
    if ((np.diff(indices) <= 0) & (np.diff(column) == 0)).any():  # bm25s emits document order; keep it so
        by_doc = np.lexsort((indices, column))
        data, indices = data[by_doc], indices[by_doc]
    starts = indptr + np.arange(len(indptr))  # one sentinel after each list
    slot = np.arange(len(data)) + column
    docs = np.full(len(data) + len(df), num_docs, dtype=np.int32)
    weights = np.zeros(len(data) + len(df), dtype=np.float32)
    docs[slot], weights[slot] = indices, data
    # weight order within each list: positive float32 weights order like their bit patterns, so one stable
    # sort of (column, -weight) as an int64 key keeps ties in document order
    key = (column << 32) | (0xFFFFFFFF - data.view(np.uint32).astype(np.int64))
    by_weight = np.argsort(key, kind="stable")
    del key
    head = np.where(df > WHOLE_LIST, np.minimum(df, depth), 0)
    rank = np.arange(len(data)) - indptr[column]  # position of the sorted posting within its list
    by_weight = by_weight[rank < head[column]]
    impact_starts = np.zeros(len(indptr), dtype=np.int64)
    np.cumsum(head, out=impact_starts[1:])
    return {
        "docs": docs,
        "weights": weights,
        "starts": starts,
        "impact_docs": indices[by_weight],
        "impact_weights": data[by_weight],
        "impact_starts": impact_starts,
    }
