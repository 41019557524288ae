"""The world directory: atomic builds, damaged worlds, noise, verification through the real search index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
from searchgym.world.names import name_key
from searchgym.world.noise import NoiseConfig
from searchgym.world.store import World, WorldError, find_entity


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("store") / "w"
    build_world(WorldConfig(seed=5, num_entities=600, verify=False), out, progress=False)
    return out


def _copy(src: Path, dst: Path) -> Path:
    import shutil

    shutil.copytree(src, dst)
    return dst


def test_existing_dir_refused_without_overwrite(small: Path, tmp_path: Path):
    before = (small / "manifest.json").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        build_world(WorldConfig(seed=6, num_entities=600, verify=False), small, progress=False)
    assert (small / "manifest.json").read_bytes() == before
    out = _copy(small, tmp_path / "w")
    w = build_world(WorldConfig(seed=6, num_entities=600, verify=False), out, overwrite=True, progress=False)
    assert w.manifest["seed"] == 6 and not list(tmp_path.glob(".w*"))


def test_failed_build_leaves_nothing(tmp_path: Path):
    cfg = WorldConfig(seed=1, num_entities=500, verify=False, type_mix={"dragon": 1.0})
    with pytest.raises(ValueError, match="dragon"):
        build_world(cfg, tmp_path / "w", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_truncated_file_raises_world_error(small: Path, tmp_path: Path):
    w = _copy(small, tmp_path / "w")
    data = (w / "corpus.jsonl").read_bytes()
    (w / "corpus.jsonl").write_bytes(data[: len(data) // 2])
    with pytest.raises(WorldError, match=r"corpus\.jsonl.*truncated"):
        World.load(w)


def test_tampered_file_raises_world_error(small: Path, tmp_path: Path):
    w = _copy(small, tmp_path / "w")
    text = (w / "edges.jsonl").read_text()
    (w / "edges.jsonl").write_text(text.replace('"verified": false', '"verified": true ', 1))
    with pytest.raises(WorldError, match=r"edges\.jsonl does not match its sha256"):
        World.load(w)


def test_missing_file_and_manifest(small: Path, tmp_path: Path):
    w = _copy(small, tmp_path / "w")
    (w / "facts.jsonl").unlink()
    with pytest.raises(WorldError, match=r"facts\.jsonl is missing"):
        World.load(w)
    (w / "manifest.json").unlink()
    with pytest.raises(WorldError, match="manifest.json is missing"):
        World.load(w)
    with pytest.raises(WorldError, match="not a world directory"):
        World.load(tmp_path / "nowhere")


def test_world_api(small: Path):
    w = World.load(small)
    person = next(e for e in w.entities.values() if e.type == "person" and w.out_edges(e.id))
    assert w.entity_by_name(person.name.upper()) is person
    edge = w.out_edges(person.id)[0]
    assert edge in w.in_edges(edge.target)
    assert {w.holder(edge), w.other_end(edge)} == {edge.source, edge.target}
    assert w.doc_of(person.id).entity == person.id
    assert w.doc_by_url("https://searchgym.local/wiki/nothing_here") is None
    assert w.verified_edges() == []  # built without verification


def test_noise_recorded_and_marked_contradicted(tmp_path: Path):
    cfg = WorldConfig(
        seed=2, num_entities=700, noise=NoiseConfig(distractor_rate=0.05, conflict_rate=0.05), verify=True
    )
    w = build_world(cfg, tmp_path / "w", progress=False)
    conflicts = [r for r in w.noise if r["kind"] == "conflict"]
    distractors = [r for r in w.noise if r["kind"] == "distractor"]
    by_id = {d.id: d for d in w.documents}
    primary = 0
    for r in conflicts:
        e = w.edges[r["edge"]]
        assert r["sentence"] in by_id[r["doc"]].text
        assert "contradicted" in e.failures and not e.verified
        if r["doc"] == w.other_end(e):  # a 1-1 partner: the wrong claim names it with another holder
            assert w.schema.relation(e.relation).cardinality == "1-1"
            assert w.entities[w.holder(e)].name not in r["sentence"]
        else:
            primary += 1
    assert primary == round(0.05 * len(w.edges)) and len(distractors) == 35
    real = {name_key(x.name) for x in w.entities.values()}
    for r in distractors:
        d = by_id[r["doc"]]
        assert d.entity is None and name_key(d.title) not in real and d.text.startswith(r["sentence"])
    clean = [e for e in w.edges if e.id not in {r["edge"] for r in conflicts}]
    assert sum(e.verified for e in clean) > 0.9 * len(clean)


def test_verification_through_real_index(tmp_path: Path):
    w = build_world(WorldConfig(seed=4, num_entities=600), tmp_path / "w", progress=False)
    summary = w.manifest["verification"]
    assert set(summary) == {r.name for r in w.schema.relations}
    assert sum(v["total"] for v in summary.values()) == len(w.edges)
    assert sum(v["verified"] for v in summary.values()) == len(w.verified_edges()) > 0.9 * len(w.edges)
    assert (tmp_path / "w" / "index" / "bm25s" / "index.json").is_file()
    manifest = json.loads((tmp_path / "w" / "manifest.json").read_text())
    assert manifest["files"]["edges.jsonl"]["sha256"] == w.manifest["files"]["edges.jsonl"]["sha256"]


@pytest.mark.parametrize("backend", ["bm25s", "tantivy"])
def test_retrieval_check_by_rank_equals_the_check_by_search_hits(tmp_path: Path, backend: str):
    """Verification asks an engine's `rank` (doc ids only) when it has one; the report equals the one from
    `batch_search` hits. top_k=1 and a distractor per entity make some edges fail retrieval, so the two paths are
    compared on both outcomes."""
    from searchgym.index.build import build_index, load_engine
    from searchgym.world.verify import verify_world

    cfg = WorldConfig(seed=6, num_entities=1500, verify=False, noise=NoiseConfig(distractor_rate=1.0))
    w = build_world(cfg, tmp_path / "w", progress=False)
    build_index(w.path, backend, progress=False)
    engine = load_engine(w.path, backend)

    class HitsOnly:  # the same engine seen through the plain search contract
        def batch_search(self, queries, k=5):
            return engine.batch_search(queries, k)

    assert hasattr(engine, "rank")
    by_rank = verify_world(w, engine, top_k=1, progress=False).edge_failures
    by_hits = verify_world(w, HitsOnly(), top_k=1, progress=False).edge_failures
    assert by_rank == by_hits
    assert 10 < sum("retrievable" in f for f in by_rank.values()) < len(w.edges)


def test_find_entity_matches_world_api(small: Path):
    w = World.load(small)
    for ent in list(w.entities.values())[::50]:
        doc = w.doc_of(ent.id)
        for key in (ent.id, ent.name.upper(), doc.url):
            found, found_doc, edges, names = find_entity(small, key)
            assert found == ent and found_doc == doc
            assert sorted(edges, key=lambda e: e.id) == sorted(
                w.out_edges(ent.id) + w.in_edges(ent.id), key=lambda e: e.id
            )
            assert all(names[x] == w.entities[x].name for e in edges for x in (e.source, e.target))
    assert find_entity(small, "No Such Name") == (None, None, [], {})
