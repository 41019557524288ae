"""Search engines, the index inside a world directory, and pagination."""

from __future__ import annotations

import dataclasses
import json
import random

import numpy as np
import pytest

from searchgym.env.observe import paginate
from searchgym.index.bm25s_engine import Bm25sEngine
from searchgym.index.build import (
    IndexMissingError,
    StaleIndexError,
    build_index,
    engine_from_documents,
    load_corpus_jsonl,
    load_engine,
)
from searchgym.io import write_jsonl
from searchgym.types import Document, SearchHit

BACKENDS = ["bm25s", "tantivy"]

DOCS = [
    Document(
        "person/1",
        "https://w/Ada_Lovelace",
        "Ada Lovelace",
        "Ada Lovelace was born in London. She worked with Charles Babbage.",
        "person/1",
    ),
    Document(
        "person/2",
        "https://w/Charles_Babbage",
        "Charles Babbage",
        "Charles Babbage was born in London. He designed the analytical engine.",
        "person/2",
    ),
    Document(
        "city/1",
        "https://w/London",
        "London",
        "London is a city in England. Ada Lovelace and Charles Babbage lived in London.",
        "city/1",
    ),
    Document(
        "city/2",
        "https://w/Paris",
        "Paris",
        "Paris is the capital of France. Marie Curie worked in Paris.",
        "city/2",
    ),
    Document(
        "person/3",
        "https://w/Marie_Curie",
        "Marie Curie",
        "Marie Curie was born in Warsaw and moved to Paris.",
        "person/3",
    ),
]


@pytest.fixture(params=BACKENDS)
def engine(request):
    return engine_from_documents(DOCS, request.param)


def test_exact_name_is_top_hit(engine):
    for d in DOCS:
        hits = engine.search(d.title, 3)
        assert hits[0].doc_id == d.id, (engine.name, d.title, [h.title for h in hits])
        assert hits[0].url == d.url and hits[0].text == d.text
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_relation_query_finds_holder(engine):
    assert engine.search("Marie Curie born", 1)[0].doc_id == "person/3"
    assert engine.search("analytical engine", 1)[0].doc_id == "person/2"


def test_typo_tolerance(engine):
    assert engine.search("Babage", 1)[0].doc_id == "person/2"
    assert engine.search("Lovelase born", 1)[0].doc_id == "person/1"


def test_fuzzy_can_be_turned_off():
    for backend in BACKENDS:
        strict = engine_from_documents(DOCS, backend, fuzzy=False)
        assert strict.search("Babage", 3) == []


def test_no_match_and_bad_k(engine):
    assert engine.search("zzzzqqq", 5) == []
    assert engine.search("", 5) == []
    assert engine.search("the of and", 5) == []
    assert engine.search("London", 0) == []
    assert len(engine.search("London", 100)) <= len(DOCS)


def test_batch_equals_single(engine):
    queries = ["London", "Paris capital", "born Warsaw", "nothing here qqq"]
    assert engine.batch_search(queries, 2) == [engine.search(q, 2) for q in queries]


def test_access(engine):
    assert engine.access("https://w/Paris").title == "Paris"
    assert engine.access("https://w/Nowhere") is None
    assert engine.access("") is None


def _brute_top(engine, terms, k):
    """Every posting list summed over the corpus; ranked by score, then document order."""
    scores = np.zeros(len(engine.store), dtype=np.float64)
    for t, w in terms.items():
        docs, weights = engine._posting(t)
        scores[docs] += weights.astype(np.float64) * w
    order = np.lexsort((np.arange(len(scores)), -scores))
    return [(int(i), float(scores[i])) for i in order[:k] if scores[i] > 0]


# (FIRST_DEPTH, SMALL, impact_depth, second-pass costs, methods that must answer some queries)
PATHS = {
    "numpy first pass, lists": (16, 0, 4096, None, {"_settled_numpy", "_score", "_plan"}),
    "python first pass": (16, 10**9, 4096, None, {"_settled", "_ranked_small", "_plan"}),
    "shallow heads": (1, 64, 4, None, {"_ranked_small", "_score", "_plan"}),
    "always dense": (1, 0, 64, {"MERGE": 1e9, "LOOKUP": 1e9}, {"_dense"}),
    "always all lists": (8, 64, 8, {"LOOKUP": 1e9, "DENSE_POSTING": 1e9}, {"_plan"}),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_pruned_top_k_is_exact(monkeypatch, path):
    """The top-k equals a brute-force sum over every posting list (documents, order and scores), on a
    skewed random corpus with ties, whichever pass and plan answers."""
    first, small, depth, costs, used = PATHS[path]
    calls: set[str] = set()
    for method in ("_settled", "_settled_numpy", "_score", "_ranked_small", "_plan", "_dense"):
        original = getattr(Bm25sEngine, method)
        monkeypatch.setattr(Bm25sEngine, method, lambda *a, _m=method, _f=original: calls.add(_m) or _f(*a))
    monkeypatch.setattr("searchgym.index.bm25s_engine.KERNEL", None)  # the numpy passes (the C kernel: test_index_kernel)
    monkeypatch.setattr("searchgym.index.bm25s_engine.FIRST_DEPTH", first)
    monkeypatch.setattr("searchgym.index.bm25s_engine.SMALL", small)
    monkeypatch.setattr("searchgym.index.bm25s_engine.WHOLE_LIST", 3)
    for name, value in (costs or {}).items():
        monkeypatch.setattr(f"searchgym.index.bm25s_engine.{name}", value)
    rng = random.Random(0)
    words = [f"w{i}" for i in range(300)]
    weights = [1 / (i + 1) for i in range(300)]  # Zipf-like: a few very common words
    docs = [
        Document(f"d{i}", f"u{i}", f"t{i}", " ".join(rng.choices(words, weights, k=rng.randint(3, 40))))
        for i in range(800)
    ]
    engine = engine_from_documents(docs, "bm25s", fuzzy=False, impact_depth=depth)
    for _ in range(300):
        query = " ".join(rng.choices(words, weights, k=rng.randint(1, 6)))
        k = rng.choice([1, 3, 5, 10, 50])
        got = [(engine.store.index_of(h.url), h.score) for h in engine.search(query, k)]
        assert got == _brute_top(engine, engine.query_terms(query), k), query
    assert used <= calls


@pytest.mark.parametrize("backend", BACKENDS)
def test_world_index_build_load_and_staleness(tmp_path, backend):
    world = tmp_path / "world"
    with pytest.raises(FileNotFoundError, match="corpus.jsonl"):
        build_index(world, backend, progress=False)
    write_jsonl(world / "corpus.jsonl", (d.to_dict() for d in DOCS))
    with pytest.raises(IndexMissingError, match=f"searchgym index build {world} --backend {backend}"):
        load_engine(world, backend)
    path = build_index(world, backend, progress=False)
    assert path == world / "index" / backend
    manifest = json.loads((path / "index.json").read_text())
    assert manifest["num_docs"] == len(DOCS) and len(manifest["corpus"]["sha256"]) == 64
    loaded = load_engine(world, backend)
    memory = engine_from_documents(DOCS, backend)
    for q in ["London", "Marie Curie born", "Babage"]:
        assert [(h.doc_id, round(h.score, 4)) for h in loaded.search(q, 3)] == [
            (h.doc_id, round(h.score, 4)) for h in memory.search(q, 3)
        ]
    assert loaded.access("https://w/London").text == DOCS[2].text
    assert loaded.access("https://w/none") is None
    if backend == "bm25s":  # hits built from the memory-mapped store equal (and hash like) constructed ones
        hits = loaded.search("Ada Lovelace London", 5)
        by_id = {d.id: d for d in DOCS}
        made = [
            SearchHit(h.doc_id, by_id[h.doc_id].url, by_id[h.doc_id].title, by_id[h.doc_id].text, h.score)
            for h in hits
        ]
        assert len(hits) == 3 and hits == made and list(map(hash, hits)) == list(map(hash, made))
        with pytest.raises(dataclasses.FrozenInstanceError):
            hits[0].score = 0.0
    loaded.close()

    extra = Document("city/3", "https://w/Rome", "Rome", "Rome is in Italy.", "city/3")
    write_jsonl(world / "corpus.jsonl", (d.to_dict() for d in [*DOCS, extra]))
    with pytest.raises(StaleIndexError, match=f"run: searchgym index build {world} --backend {backend}"):
        load_engine(world, backend)
    build_index(world, backend, progress=False)  # a stale index is rebuilt without --overwrite
    assert load_engine(world, backend).search("Rome", 1)[0].doc_id == "city/3"


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown search backend 'nope'"):
        engine_from_documents(DOCS, "nope")


def test_load_corpus_jsonl(tmp_path):
    path = tmp_path / "corpus.jsonl"
    write_jsonl(
        path,
        [
            {"id": "0", "contents": '"Ada Lovelace"\nA mathematician.'},
            {"id": 7, "contents": "Paris\nA city."},
        ],
    )
    docs = load_corpus_jsonl(path)
    assert [(d.id, d.url, d.title, d.text) for d in docs] == [
        ("0", "corpus://0", "Ada Lovelace", "A mathematician."),
        ("7", "corpus://7", "Paris", "A city."),
    ]
    assert engine_from_documents(docs).search("mathematician", 1)[0].doc_id == "0"
    path.write_text('{"id": 1, "text": "no contents"}\n')
    with pytest.raises(ValueError, match=":1: expected"):
        load_corpus_jsonl(path)


@pytest.mark.parametrize("seed", range(20))
def test_paginate_properties(seed):
    rng = random.Random(seed)
    pieces = [
        "Short one. ",
        "A somewhat longer sentence here! ",
        "\n\n",
        "word ",
        "x" * rng.randint(1, 90),
        "\n",
    ]
    text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
    limit = rng.randint(1, 80)
    pages = paginate(text, limit)
    assert "".join(pages) == text
    assert pages and all(len(p) <= limit for p in pages)
    assert all(pages) or pages == [""]


def test_paginate_prefers_boundaries():
    text = "First sentence here. Second sentence here.\n\nA new paragraph starts."
    assert paginate(text, 44) == ["First sentence here. Second sentence here.\n\n", "A new paragraph starts."]
    assert paginate(text, 25) == [
        "First sentence here. ",
        "Second sentence here.\n\n",
        "A new paragraph starts.",
    ]
    assert paginate("abc", 10) == ["abc"]
    with pytest.raises(ValueError):
        paginate("abc", 0)


def test_cli_build_and_serve_errors(tmp_path):
    from typer.testing import CliRunner

    from searchgym.cli import app

    world = tmp_path / "world"
    write_jsonl(world / "corpus.jsonl", (d.to_dict() for d in DOCS))
    runner = CliRunner()
    served = runner.invoke(app, ["serve", str(world), "--port", "1"])
    assert served.exit_code == 2 and f"run: searchgym index build {world} --backend bm25s" in served.output
    built = runner.invoke(app, ["index", "build", str(world), "--backend", "tantivy"])
    assert built.exit_code == 0, built.output
    assert load_engine(world, "tantivy").search("Paris", 1)[0].doc_id == "city/2"
    missing = runner.invoke(app, ["index", "build", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0 and "corpus.jsonl" in missing.output


@pytest.mark.parametrize("backend", BACKENDS)
def test_typo_matches_rank_below_exact_matches(backend):
    """An unknown query word must not pull in a rare near-namesake above the article the exact words name."""
    docs = [
        *DOCS,
        Document("person/9", "https://w/Fother_Gesstea", "Fother Gesstea", "Fother Gesstea painted Marie."),
    ]
    engine = engine_from_documents(docs, backend)
    assert engine.search("Marie Curie father", 1)[0].doc_id == "person/3"
    assert engine.search("Fother Gesstea", 1)[0].doc_id == "person/9"


def test_typo_of_a_word_whose_stem_is_further_away():
    """A typo is an edit of the word as written: `Taismeasino` is one edit from the corpus word `Taismeasion`
    but four from its stem `taismeas`, `Lithhokdal` one from `Lithhokdale` (stem `lithhokdal`) but its own
    stem is `lithhokd`. Both must still find their article (they did not when only stems were matched)."""
    docs = [
        *DOCS,
        Document("org/1", "https://w/Taismeasion_Association", "Taismeasion Association", "A guild."),
        Document("place/1", "https://w/Lithhokdale", "Lithhokdale", "Lithhokdale is a town."),
        Document("org/2", "https://w/Taismeasa_Association", "Taismeasa Association", "Another guild."),
    ]
    engine = engine_from_documents(docs, "bm25s")
    assert engine.search("Taismeasino Association", 1)[0].doc_id == "org/1"
    assert engine.search("Lithhokdal", 1)[0].doc_id == "place/1"
    assert engine.search("Taismeasion Association", 1)[0].doc_id == "org/1"  # exact still first


def test_a_typo_that_is_another_indexed_word_still_counts_its_neighbours():
    """`Corea Foods` for `Corba Foods`: `corea` is indexed (a town), so it is no unknown word to correct; its
    one-edit neighbour `corba` still counts at `near_weight`, which lifts Corba Foods above the other Foods
    articles (tied without it). Exact spellings keep their own articles first."""
    docs = [
        *DOCS,
        Document("place/7", "https://w/Corea", "Corea", "Corea is a town on a river with a long history."),
        Document("org/8", "https://w/Pelt_Foods", "Pelt Foods", "Pelt Foods is a company."),
        Document("org/7", "https://w/Corba_Foods", "Corba Foods", "Corba Foods is a company."),
        Document("org/9", "https://w/Dun_Foods", "Dun Foods", "Dun Foods is a company."),
    ]
    engine = engine_from_documents(docs, "bm25s")
    hits = engine.search("Corea Foods", 3)
    assert [h.doc_id for h in hits] == ["place/7", "org/7", "org/8"] and hits[1].score > hits[2].score
    assert engine.search("Corea", 1)[0].doc_id == "place/7"
    assert engine.search("Corba Foods", 1)[0].doc_id == "org/7"
    strict = engine_from_documents(docs, "bm25s", near_weight=0.0).search("Corea Foods", 3)
    assert [h.doc_id for h in strict] == ["place/7", "org/8", "org/7"] and strict[1].score == strict[2].score
