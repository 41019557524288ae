"""Schema, graph generation and article writing: constraints hold on generated worlds of several seeds."""

from __future__ import annotations

import operator
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
from searchgym.world.corpus import url_for
from searchgym.world.names import NameRegistry, name_key
from searchgym.world.noise import NoiseConfig
from searchgym.world.schema import SchemaError, load_schema, parse_schema
from searchgym.world.store import World

OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


@pytest.fixture(scope="module", params=[0, 1, 2])
def world(request, tmp_path_factory) -> World:
    out = tmp_path_factory.mktemp(f"world{request.param}") / "w"
    return build_world(WorldConfig(seed=request.param, num_entities=1500, verify=False), out, progress=False)


def test_default_schema_is_rich():
    s = load_schema(None)
    assert len(s.entity_types) >= 8
    assert len(s.relations) >= 16
    assert {r.cardinality for r in s.relations} == {"1-1", "1-n", "n-1"}
    numeric = [a for t in s.entity_types for a in t.attributes if a.numeric and len(a.comparatives) == 2]
    assert {a.kind for a in numeric} >= {"int", "float", "year", "date"}
    assert {r.name for r in s.relations if r.acyclic} >= {"parent_of", "subsidiary_of"}
    for r in s.relations:
        assert r.query and r.questions and r.descriptors and r.phrasings and r.other_phrasings, r.name
    assert s.relation("parent_of").holder == "target" and s.relation("born_in").holder == "source"


def test_bad_schema_lists_every_problem():
    text = """
entity_types:
  - name: person
    name_style: person
    weight: 1
    lead: ["{name} is {nope}."]
    attributes:
      - {name: age, kind: colour, phrasings: ["{name} {value}"]}
  - name: city
    name_style: no_such_style
    weight: 1
    lead: ["{name}"]
relations:
  - name: born_in
    source: person
    target: citty
    cardinality: n-2
    phrasings: ["{source} was born."]
    other_phrasings: ["{source} {target}"]
    constraints: ["source.age < target"]
"""
    with pytest.raises(SchemaError) as err:
        parse_schema(text, where="bad.yaml")
    msg = str(err.value)
    expected = [
        "entity_types[0].lead[0]: unknown field(s) ['nope']",
        "entity_types[0].attributes[0].kind: 'colour'",
        "entity_types[1].name_style: unknown style 'no_such_style'",
        "relations[0].target: unknown entity type 'citty'",
        "relations[0].cardinality: 'n-2'",
        "relations[0].constraints[0]: cannot parse",
        "must name both {source} and {target}",
    ]
    for part in expected:
        assert part in msg, part
    assert len(err.value.problems) >= len(expected)
    assert msg.startswith("bad.yaml: ")


def test_name_registry_refuses_traps_and_folded_duplicates():
    reg = NameRegistry()
    assert reg.claim("Ana Li")
    assert not reg.claim("ana-li")  # same after folding
    assert not reg.claim("Ana")  # inside an existing name
    assert not reg.claim("Ana Li Moro")  # contains an existing name
    assert reg.claim("Anar Lim")  # a prefix of a word is not a word-boundary trap


def test_names_unique_and_no_substring_traps(world):
    folded = [name_key(e.name) for e in world.entities.values()]
    assert len(set(folded)) == len(folded)
    names = set(folded)
    for f in folded:
        tokens = f.split()
        spans = {" ".join(tokens[i:j]) for i in range(len(tokens)) for j in range(i + 1, len(tokens) + 1)}
        assert not (spans - {f}) & names, f


def test_types_cardinality_acyclicity_temporal(world):
    schema = world.schema
    by_rel = defaultdict(list)
    for e in world.edges:
        by_rel[e.relation].append(e)
    assert set(by_rel) == {r.name for r in schema.relations}  # every relation is populated
    for r in schema.relations:
        edges = by_rel[r.name]
        for e in edges:
            assert world.entities[e.source].type == r.source and world.entities[e.target].type == r.target
            assert e.source != e.target
        src, tgt = Counter(e.source for e in edges), Counter(e.target for e in edges)
        if r.cardinality in ("n-1", "1-1"):
            assert max(src.values()) == 1, r.name
        if r.cardinality in ("1-n", "1-1"):
            assert max(tgt.values()) == 1, r.name
        for c in r.constraints:
            for e in edges:
                a = {"source": world.entities[e.source].attrs, "target": world.entities[e.target].attrs}
                left = a[c.left[0]][c.left[1]] + c.left[2]
                right = a[c.right[0]][c.right[1]] + c.right[2]
                assert OPS[c.op](left, right), (c.text, e)
        if r.acyclic:
            assert not _has_cycle([(e.source, e.target) for e in edges]), r.name


def _has_cycle(pairs: list[tuple[str, str]]) -> bool:
    """Kahn's algorithm: a directed graph is acyclic iff repeatedly removing sources empties it."""
    succ, indeg = defaultdict(list), Counter()
    for s, t in pairs:
        succ[s].append(t)
        indeg[t] += 1
    nodes = set(succ) | set(indeg)
    ready = [n for n in nodes if indeg[n] == 0]
    removed = 0
    while ready:
        n = ready.pop()
        removed += 1
        for t in succ[n]:
            indeg[t] -= 1
            if indeg[t] == 0:
                ready.append(t)
    return removed < len(nodes)


def test_cycle_checker_detects_cycles():
    assert _has_cycle([("a", "b"), ("b", "c"), ("c", "a")])
    assert not _has_cycle([("a", "b"), ("b", "c"), ("a", "c")])


def test_degrees_are_skewed(world):
    born = Counter(e.target for e in world.edges if e.relation == "born_in")
    mean = sum(born.values()) / world.manifest["counts"]["entity_types"]["city"]
    assert max(born.values()) >= 5 * mean  # preferential (Zipf-like) choice of the other end


def test_every_fact_stated_in_holder_article(world):
    assert len(world.facts) == len(world.edges)
    for e in world.edges:
        fact = world.facts[e.id]
        holder, other = world.holder(e), world.other_end(e)
        assert fact.doc == holder == world.doc_of(holder).entity
        assert fact.sentence in world.doc_of(holder).text
        assert world.entities[other].name in fact.sentence
        assert world.entities[holder].name in world.doc_of(other).text  # mentioned on the other side too


def test_articles_state_attributes_and_have_unique_urls(world):
    urls = [d.url for d in world.documents]
    assert len(set(urls)) == len(urls)
    for ent in list(world.entities.values())[::7]:
        doc = world.doc_of(ent.id)
        assert doc.url == url_for(ent.name) and world.doc_by_url(doc.url) is doc
        assert doc.title == ent.name and doc.text.count("\n## ") >= 1 and "Summary\nType: " in doc.text
        spec = world.schema.entity_type(ent.type)
        for a in spec.attributes:
            assert a.format(ent.attrs[a.name]) in doc.text, (ent.id, a.name)


def test_phrasings_vary(world):
    by_rel = defaultdict(set)
    for e in world.edges:
        r = world.schema.relation(e.relation)
        for k, p in enumerate(r.phrasings):
            s = world.entities[e.source].name
            t = world.entities[e.target].name
            if p.format(source=s, target=t) == world.facts[e.id].sentence:
                by_rel[e.relation].add(k)
    assert by_rel["born_in"] == {0, 1, 2}


def test_same_seed_same_bytes_different_seed_differs(tmp_path: Path):
    noise = NoiseConfig(distractor_rate=0.02, conflict_rate=0.02)
    cfg = WorldConfig(seed=7, num_entities=800, verify=False, noise=noise)
    a = build_world(cfg, tmp_path / "a", progress=False)
    b = build_world(cfg, tmp_path / "b", progress=False)
    for name in ["manifest.json", *a.manifest["files"]]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    c = build_world(WorldConfig(seed=8, num_entities=800, verify=False), tmp_path / "c", progress=False)
    assert c.manifest["content_hash"] != a.manifest["content_hash"]
    assert a.manifest["content_hash"] == b.manifest["content_hash"]


def test_world_config_yaml_roundtrip(tmp_path: Path):
    cfg = WorldConfig(seed=3, num_entities=1234, type_mix={"person": 2.0}).override(
        ["noise.conflict_rate=0.1"]
    )
    cfg.to_yaml(tmp_path / "w.yaml")
    back = WorldConfig.from_yaml(tmp_path / "w.yaml")
    assert back == cfg and back.noise.conflict_rate == 0.1


def test_same_bytes_across_processes_and_hash_seeds(tmp_path: Path):
    import os
    import subprocess
    import sys

    code = (
        "import sys; from searchgym.pipeline import build_world; from searchgym.world.build import WorldConfig; "
        "build_world(WorldConfig(seed=11, num_entities=500, verify=False), sys.argv[1], progress=False)"
    )
    for h in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": h}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / h)], check=True, env=env)
    for name in ("manifest.json", "entities.jsonl", "edges.jsonl", "facts.jsonl", "corpus.jsonl"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name


def test_type_mix_and_zipf_exponent(tmp_path: Path):
    flat = WorldConfig(seed=1, num_entities=1000, verify=False, zipf_exponent=0.0, type_mix={"person": 0.8})
    w = build_world(flat, tmp_path / "w", progress=False)
    counts = w.manifest["counts"]["entity_types"]
    assert counts["person"] > 0.55 * 1000  # person weight 0.8 against the others' 0.6
    born = Counter(e.target for e in w.edges if e.relation == "born_in")
    mean = sum(born.values()) / counts["city"]
    assert max(born.values()) < 4 * mean + 5  # uniform choice: no hubs (compare test_degrees_are_skewed)


def test_worker_count_never_changes_the_bytes(tmp_path: Path, monkeypatch):
    """Articles and retrieval checks split over forked workers (small chunks, so there are many) give the bytes
    one process gives, verification and noise included."""
    import searchgym.world.build as build_mod
    import searchgym.world.verify as verify_mod

    monkeypatch.setattr(build_mod, "ARTICLES_PER_CHUNK", 97)
    monkeypatch.setattr(verify_mod, "CHUNK", 300)
    noise = NoiseConfig(distractor_rate=0.05, conflict_rate=0.05)
    for workers in (1, 2):
        cfg = WorldConfig(seed=9, num_entities=700, noise=noise, workers=workers)
        build_world(cfg, tmp_path / str(workers), progress=False)
    names = ["manifest.json", *World.load(tmp_path / "1").manifest["files"]]
    for name in names:
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes(), name
    assert '"workers"' not in (tmp_path / "1" / "manifest.json").read_text()
