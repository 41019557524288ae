"""The bm25s engine's C top-k kernel (`_bm25kernel.c`): built by the install and used, bit for bit the numpy
path's results on a built world index and on a skewed corpus that drives every pass, the numpy fallback when
SEARCHGYM_NO_KERNEL=1, bad input refused, and no warm-up in a fresh process."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from searchgym.index import bm25s_engine
from searchgym.index.bm25s_engine import ARRAYS, Bm25sEngine
from searchgym.index.build import build_index, engine_from_documents, load_engine
from searchgym.index.text import WORD
from searchgym.types import Document
from searchgym.world.build import WorldConfig, build_world

KS = (0, 1, 2, 5, 10, 50, 10**9)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cfg = WorldConfig(seed=2, num_entities=3000, verify=False)  # common words' lists pass WHOLE_LIST
    world = build_world(cfg, tmp_path_factory.mktemp("kernel") / "world", progress=False)
    build_index(world.path, "bm25s", progress=False)
    return world


@pytest.fixture(scope="module")
def engine(world):
    return load_engine(world.path, "bm25s")


def _queries(world, n: int, seed: int = 0) -> list[str]:
    """Names, facts, questions-like word runs, one-edit typos, plus empty, stop-word-only and unknown ones."""
    rng = random.Random(seed)
    docs = world.documents
    words = [w for d in rng.sample(docs, 200) for w in WORD.findall(d.text)]
    out = ["", "   ", "the of and", "zzzzqqqq", "zzzzqqqq the", "Ünïcödé ß"]
    for _ in range(n):
        name = rng.choice(docs).title
        some = " ".join(rng.choices(words, k=rng.randint(1, 10)))
        query = rng.choice((name, some, f"{name} {some}", f"{some} {name} {some}"))
        ws = query.split()
        if rng.random() < 0.3 and ws:  # one edit in a word of 5+ letters
            i = rng.randrange(len(ws))
            if len(ws[i]) >= 5:
                j = rng.randrange(len(ws[i]))
                ws[i] = ws[i][:j] + rng.choice("aeiouxz") + ws[i][j + 1 :]
        out.append(" ".join(ws))
    return out


def _numpy(engine: Bm25sEngine, terms: dict[int, float], k: int) -> tuple[list[int], list[float]]:
    kernel, engine.kernel = engine.kernel, None
    try:
        return engine._top_k(terms, k)
    finally:
        engine.kernel = kernel


def _brute(engine: Bm25sEngine, terms: dict[int, float], k: int) -> tuple[list[int], list[float]]:
    """Every stored posting summed (ascending term id), score descending then document ascending."""
    scores = np.zeros(len(engine.store))
    for t in sorted(terms):
        docs, weights = engine._posting(t)
        scores[docs] += weights.astype(np.float64) * terms[t]
    order = [int(i) for i in np.lexsort((np.arange(len(scores)), -scores))[:k] if scores[i] > 0]
    return order, [float(scores[i]) for i in order]


def test_the_installed_package_uses_the_kernel(engine):
    """The install compiled the extension and engines use it (CI fails here on a silent fallback)."""
    if os.environ.get("SEARCHGYM_NO_KERNEL", "") not in ("", "0"):
        pytest.skip("SEARCHGYM_NO_KERNEL is set")
    from searchgym.index import _bm25kernel

    assert bm25s_engine.KERNEL is _bm25kernel
    assert isinstance(engine.kernel, _bm25kernel.Index)
    assert isinstance(Bm25sEngine.from_documents([Document("a", "u", "t", "x")]).kernel, _bm25kernel.Index)


def test_kernel_equals_numpy_on_a_built_world_index(world, engine):
    """Same documents, order and float64 scores as the numpy passes (and as summing every posting), for
    every query kind and k from 0 to more than the matches; `rank` and `search` agree too."""
    assert engine.kernel is not None
    compared = 0
    rng = random.Random(1)
    for query in _queries(world, 600):
        terms = engine.query_terms(query)
        for k in rng.sample(KS, 3):
            if not terms or k < 1:
                assert engine.rank(query, k) == [] and engine.search(query, k) == []
                continue
            got = engine._top_k(terms, k)
            assert got == _numpy(engine, terms, k), (query, k)
            if k <= 50:
                assert got == _brute(engine, terms, k), (query, k)
            compared += 1
        hits = engine.search(query, 5)
        assert engine.rank(query, 5) == [(h.doc_id, h.score) for h in hits]
    assert compared > 1000


@pytest.mark.parametrize("depth", [1, 4, 64, 4096])
def test_kernel_is_exact_on_a_skewed_corpus(monkeypatch, depth):
    """Zipf-like words with ties, many long lists (WHOLE_LIST 3) and shallow heads: every pass of the kernel
    (one head, short lists only, cut lists, lists read whole, the dense sum) against brute force and numpy."""
    monkeypatch.setattr("searchgym.index.bm25s_engine.WHOLE_LIST", 3)
    rng = random.Random(depth)
    words = [f"w{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]
    docs = [
        Document(f"d{i}", f"u{i}", f"t{i}", " ".join(rng.choices(words, weights, k=rng.randint(1, 40))))
        for i in range(800)
    ]
    engine = engine_from_documents(docs, "bm25s", fuzzy=False, impact_depth=depth)
    assert engine.kernel is not None
    for _ in range(400):
        query = " ".join(rng.choices(words, weights, k=rng.randint(1, 8)))
        terms = engine.query_terms(query)
        k = rng.choice((1, 3, 5, 16, 17, 50, 2000))
        got = engine._top_k(terms, k)
        assert got == _brute(engine, terms, k) == _numpy(engine, terms, k), (query, k)


def test_single_document_and_empty_corpus():
    one = Bm25sEngine.from_documents([Document("a", "u:a", "Alpha", "alpha beta beta")])
    for k in (1, 5, 100):
        hits = one.search("alpha beta gamma", k)
        assert [h.doc_id for h in hits] == ["a"] and hits[0].score > 0
        assert one._top_k(one.query_terms("beta"), k) == _numpy(one, one.query_terms("beta"), k)
    assert one.search("gamma", 5) == [] and one.search("alpha", 0) == []
    empty = Bm25sEngine.from_documents([])
    assert empty.search("alpha", 5) == [] and empty.kernel.top_k({0: 1.0}, 5) == ([], [])


def test_kernel_refuses_bad_input(engine):
    kernel = engine.kernel
    with pytest.raises(ValueError, match="term id .* is not in this index"):
        kernel.top_k({len(engine.vocab): 1.0}, 5)
    with pytest.raises(ValueError, match="term id -1"):
        kernel.top_k({-1: 1.0}, 5)
    with pytest.raises(TypeError, match=r"top_k\(query: dict"):
        kernel.top_k([(0, 1.0)], 5)
    with pytest.raises(TypeError):
        kernel.top_k({0: "heavy"}, 5)
    arrays = [getattr(engine, n) for n in ARRAYS]
    wrong = [arrays[0].astype(np.int64), *arrays[1:]]
    with pytest.raises(TypeError, match="docs: expected a contiguous array of int32"):
        type(kernel)(*wrong, len(engine))
    short = [arrays[0][:-1], *arrays[1:]]
    with pytest.raises(ValueError, match="inconsistent lengths"):
        type(kernel)(*short, len(engine))


def _fresh(world, env: dict[str, str]) -> dict:
    """Load the world's index in a new interpreter and run its first queries there."""
    code = (
        "import json, sys, time; from searchgym.index import bm25s_engine; "
        "from searchgym.index.build import load_engine; t = time.perf_counter(); "
        "e = load_engine(sys.argv[1], 'bm25s'); hits = e.search(sys.argv[2], 5); "
        "s = time.perf_counter() - t; "
        "print(json.dumps({'kernel': e.kernel is not None, 'module': bm25s_engine.KERNEL is not None, "
        "'seconds': s, 'hits': [(h.doc_id, h.score) for h in hits]}))"
    )
    query = world.documents[7].title + " born"
    out = subprocess.run(
        [sys.executable, "-c", code, str(world.path), query],
        capture_output=True, text=True, check=True, env={**os.environ, **env},
    )  # fmt: skip
    return json.loads(out.stdout)


def test_fallback_when_forced_and_no_warm_up(world, engine):
    """SEARCHGYM_NO_KERNEL=1 takes the numpy path (same hits); with or without the kernel, opening the
    index and answering the first query in a new process takes under a second."""
    forced = _fresh(world, {"SEARCHGYM_NO_KERNEL": "1"})
    assert forced["kernel"] is False and forced["module"] is False
    used = _fresh(world, {"SEARCHGYM_NO_KERNEL": ""})
    assert used["kernel"] is True
    assert used["hits"] == forced["hits"] != []
    assert used["seconds"] < 1.0 and forced["seconds"] < 1.0, (used, forced)
    assert json.loads(Path(world.path / "index" / "bm25s" / "index.json").read_text())["num_docs"] == len(engine)
