"""The bm25s engine's pruned top-k against brute-force BM25 over a small generated world, with the engine's
own constants (no monkeypatching): random name, fact, mixed and typo queries, k from 1 to 50."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from searchgym.index.bm25s_engine import WHOLE_LIST, Bm25sEngine
from searchgym.index.build import engine_from_documents
from searchgym.index.text import WORD, Tokenizer
from searchgym.world.build import WorldConfig, build_world

REL = 1e-6  # bm25s computes its weights in float32; the formula below is float64


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cfg = WorldConfig(seed=1, num_entities=3000, verify=False)  # common words' lists pass WHOLE_LIST
    return build_world(cfg, tmp_path_factory.mktemp("exact") / "world", progress=False)


@pytest.fixture(scope="module")
def engine(world):
    return engine_from_documents(world.documents, "bm25s")


def _queries(world, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    docs = world.documents
    words = [w for d in docs for w in WORD.findall(d.text)]
    out = []
    for _ in range(n):
        kind = rng.choice(("name", "words", "name+words", "typo"))
        name = rng.choice(docs).title
        some = " ".join(rng.choices(words, k=rng.randint(1, 8)))
        query = {"name": name, "words": some, "name+words": f"{name} {some}", "typo": f"{name} {some}"}[kind]
        if kind == "typo":
            ws = query.split()
            i = rng.randrange(len(ws))
            if len(ws[i]) > 4:
                j = rng.randrange(len(ws[i]))
                ws[i] = ws[i][:j] + ws[i][j + 1 :]
            query = " ".join(ws)
        out.append(query)
    return out


def _bm25_formula(engine, docs):
    """score(terms, doc) from BM25 (Lucene variant, bm25s's k1 and b) recomputed from the documents' tokens."""
    tok, cfg = Tokenizer(), engine.config
    tokens = [tok.tokenize(d.title) * cfg.title_weight + tok.tokenize(d.text) for d in docs]
    n, avg = len(docs), sum(map(len, tokens)) / len(docs)
    postings: dict[str, dict[int, int]] = {}
    for d, ts in enumerate(tokens):
        for t, f in Counter(ts).items():
            postings.setdefault(t, {})[d] = f
    term = dict(enumerate(engine.vocab))

    def scores(terms: dict[int, float]) -> np.ndarray:
        out = np.zeros(n)
        for i, count in terms.items():
            tfs = postings[term[i]]
            idf = math.log(1 + (n - len(tfs) + 0.5) / (len(tfs) + 0.5))
            for d, f in tfs.items():
                out[d] += count * idf * f / (f + cfg.k1 * (1 - cfg.b + cfg.b * len(tokens[d]) / avg))
        return out

    return scores


def _stored_sum(engine, terms: dict[int, float]) -> np.ndarray:
    scores = np.zeros(len(engine.store))
    for t, w in terms.items():
        docs, weights = engine._posting(t)
        scores[docs] += weights.astype(np.float64) * w
    return scores


@pytest.mark.parametrize("kernel", [True, False], ids=["C kernel", "numpy"])
def test_top_k_equals_brute_force_bm25(monkeypatch, world, engine, kernel):
    if kernel:
        assert engine.kernel is not None, "the C kernel is not built (pip install -e .)"
    else:
        monkeypatch.setattr(engine, "kernel", None)
    calls: set[str] = set()
    for method in ("_settled", "_settled_numpy", "_ranked_small", "_score", "_plan", "_dense"):
        original = getattr(Bm25sEngine, method)
        monkeypatch.setattr(Bm25sEngine, method, lambda *a, _m=method, _f=original: calls.add(_m) or _f(*a))
    formula = _bm25_formula(engine, world.documents)
    rng = random.Random(1)
    for query in _queries(world, 400):
        k = rng.choice([1, 2, 5, 10, 50])
        terms = engine.query_terms(query)
        got = [(engine.store.index_of(h.url), h.score) for h in engine.search(query, k)]
        # bit for bit: the same documents, order and float64 scores as summing every stored posting
        stored = _stored_sum(engine, terms)
        order = np.lexsort((np.arange(len(stored)), -stored))
        assert got == [(int(i), float(stored[i])) for i in order[:k] if stored[i] > 0], query
        # and the stored weights are BM25 of the documents' tokens: the top-k of the formula's scores, up to
        # float32 rounding (near-ties may swap, nothing clearly better is missing)
        exact = formula(terms)
        best = np.sort(exact[exact > 0])[::-1][:k]
        assert len(got) == len(best), query
        assert np.allclose([s for _, s in got], best, rtol=REL, atol=0), query
        assert np.allclose([exact[d] for d, _ in got], best, rtol=REL, atol=0), query
        if got:
            floor = got[-1][1] * (1 + REL)
            assert set(np.flatnonzero(exact > floor).tolist()) <= {d for d, _ in got}, query
    if not kernel:
        assert {"_settled", "_ranked_small", "_score"} <= calls, calls  # the pruned passes answered some queries


def test_world_has_long_lists(engine):
    assert (engine.meta[:, 1] > WHOLE_LIST).sum() >= 10  # or the test above would never prune


@pytest.mark.parametrize("backend", ["bm25s", "tantivy"])
def test_rank_is_search_without_texts(world, backend):
    engine = engine_from_documents(world.documents, backend)
    for query in _queries(world, 100, seed=2) + ["", "the of", "zzzzqqqq"]:
        for k in (0, 1, 5):
            assert engine.rank(query, k) == [(h.doc_id, h.score) for h in engine.search(query, k)], query


def test_batch_equals_single_on_a_world(world, engine):
    queries = _queries(world, 64, seed=3)
    assert engine.batch_search(queries, 5) == [engine.search(q, 5) for q in queries]


def test_fuzzy_candidates_equal_a_scan_of_the_vocabulary(engine):
    """One search for a word and its stem finds exactly the vocabulary terms within one edit of either, or
    within one edit of a corpus word whose stem the term is."""
    from searchgym.index.text import _one_edit

    vocab, fuzzy, tok = list(engine.vocab), engine.fuzzy, Tokenizer()
    surface = list(zip(engine.surface, fuzzy.surface_terms, strict=True))
    assert surface and all(tok.stem(w) == vocab[t] != w for w, t in surface)
    rng = random.Random(4)
    words = []
    for term in rng.sample([t for t in vocab if len(t) >= 5], 60) + rng.sample([w for w, _ in surface], 30):
        i = rng.randrange(len(term))
        words += [term[:i] + term[i + 1 :], term[:i] + "q" + term[i:], term + "ing", term[:3]]
    for word in words:
        stem = tok.stem(word)
        indexed = [*enumerate(vocab), *((t, w) for w, t in surface)]
        near = sorted(
            {
                t
                for t, v in indexed
                if any(len(w) >= fuzzy.min_chars and _one_edit(w, v) for w in (word, stem))
            }
        )
        assert fuzzy.candidates(word, stem) == near, word
        assert fuzzy.candidates(word, stem) == fuzzy.candidates(word, stem)  # cached, same answer


def test_index_weights_equal_bm25s_bit_for_bit(world):
    """`lucene_weights` (vectorised) gives exactly the float32 weights, documents and list bounds bm25s 0.3.16's
    own `build_index_from_ids(method="lucene")` computes, on a 3,000-entity world and on a corpus with an empty
    document, a one-word document and repeated words."""
    bm25s = pytest.importorskip("bm25s")
    from searchgym.index.bm25s_engine import lucene_weights

    tok, vocab, seen = Tokenizer(), {}, {}
    world_ids = [
        tok.term_ids(d.title, vocab, seen) * 2 + tok.term_ids(d.text, vocab, seen) for d in world.documents
    ]
    odd = [[0, 1, 1, 1], [], [2], [2, 0, 2, 2, 2, 3], [3, 3]]
    for corpus, n_terms, k1, b in ((world_ids, len(vocab), 1.5, 0.75), (odd, 4, 1.2, 0.5)):
        m = bm25s.BM25(k1=k1, b=b, method="lucene").build_index_from_ids(
            list(range(n_terms)), corpus, show_progress=False
        )
        ptr, docs, data = np.asarray(m["indptr"]), np.asarray(m["indices"]), np.asarray(m["data"], np.float32)
        order = np.lexsort((docs, np.repeat(np.arange(n_terms), np.diff(ptr))))  # rows in document order
        flat = np.array([i for row in corpus for i in row], dtype=np.int64)
        weights, ours_docs, ours_ptr = lucene_weights(
            flat, np.array([len(r) for r in corpus]), n_terms, k1, b
        )
        assert np.array_equal(ours_ptr, ptr) and np.array_equal(ours_docs, docs[order])
        assert weights.dtype == np.float32 and np.array_equal(
            weights.view(np.uint32), data[order].view(np.uint32)
        )


def test_tokenising_in_workers_builds_the_same_index(world):
    """The corpus tokenised by 3 forked workers (their vocabularies merged in span order) gives the index one pass
    gives, array for array and term id for term id."""
    one = Bm25sEngine.from_documents(world.documents, workers=1)
    three = Bm25sEngine.from_documents(world.documents, workers=3)
    assert list(three.vocab) == list(one.vocab)
    for name in ("docs", "weights", "starts", "impact_docs", "impact_weights", "impact_starts"):
        assert np.array_equal(getattr(three, name), getattr(one, name)), name


def test_neighbour_lists_equal_a_scan_of_the_vocabulary(engine):
    """Each term in at most NEAR_MAX_DF documents lists exactly the other terms within one edit of it or of one
    of its surface words, directly or through theirs; a more common term lists none."""
    from searchgym.index.bm25s_engine import NEAR_MAX_DF
    from searchgym.index.text import _one_edit

    vocab, fuzzy = list(engine.vocab), engine.fuzzy
    forms: dict[int, list[str]] = {t: [w] for t, w in enumerate(vocab)}
    for w, t in zip(engine.surface, fuzzy.surface_terms, strict=True):
        forms[int(t)].append(w)
    indexed = [(t, w) for t, ws in forms.items() for w in ws]
    df = engine.meta[:, 1]
    rng = random.Random(5)
    common = [t for t in range(len(vocab)) if df[t] > NEAR_MAX_DF]
    sample = rng.sample([t for t in range(len(vocab)) if df[t] <= NEAR_MAX_DF], 150) + common[:20]
    assert common, "the world should have common terms"
    listed = 0
    for t in sample:
        got = engine._near_terms[engine._near_starts[t] : engine._near_starts[t + 1]].tolist()
        mine = [w for w in forms[t] if len(w) >= fuzzy.min_chars]
        want = (
            sorted({u for u, v in indexed if u != t and any(_one_edit(w, v) for w in mine)})
            if df[t] <= NEAR_MAX_DF
            else []
        )
        assert got == want, vocab[t]
        listed += bool(got)
    assert listed >= 10  # the sample exercises real neighbour lists
