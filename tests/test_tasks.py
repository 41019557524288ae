"""Task synthesis: unique answers (re-checked independently), verified evidence, leak-free splits, determinism."""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections import defaultdict

import pytest

from searchgym.config import ConfigError
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.forms import evaluate, form_key
from searchgym.tasks.store import TaskSetError, load_manifest, load_tasks, save_tasks
from searchgym.tasks.synth import REJECTIONS, Draft, Synthesizer, build_tasks, synthesize
from searchgym.text import normalize_answer
from searchgym.world.build import WorldConfig
from searchgym.world.noise import NoiseConfig
from searchgym.world.store import World

SEEDS = (1, 2, 3)
SMALL = TaskConfig(chain_per_hops=12, obfuscated=24, intersection=15, comparison=16)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory) -> dict[int, World]:
    root = tmp_path_factory.mktemp("worlds")
    return {
        s: build_world(WorldConfig(seed=s, num_entities=400), root / f"w{s}", progress=False) for s in SEEDS
    }


@pytest.fixture(scope="module")
def task_sets(worlds) -> dict[int, list]:
    return {s: build_tasks(w, dataclasses.replace(SMALL, seed=s), progress=False) for s, w in worlds.items()}


# -- an evaluator written independently of synth.py, straight from the world's edge list


def _holder_other(world: World, edge):
    spec = next(r for r in world.schema.relations if r.name == edge.relation)
    return (edge.target, edge.source) if spec.cardinality == "1-n" else (edge.source, edge.target)


def _solutions(world: World, form: dict, verified_only: bool) -> set[str]:
    edges = [e for e in world.edges if e.verified or not verified_only]
    if "entity" in form:
        return {form["entity"]}
    if "hop" in form:
        starts = _solutions(world, form["of"], verified_only)
        out = set()
        for e in edges:
            h, o = _holder_other(world, e)
            if e.relation == form["hop"] and h in starts:
                out.add(o)
        return out
    if "find" in form:
        cands = {eid for eid, ent in world.entities.items() if ent.type == form["find"]}
        for c in form["where"]:
            if "attr" in c:
                cands = {x for x in cands if world.entities[x].attrs.get(c["attr"]) == c["value"]}
            else:
                targets = _solutions(world, c["to"], verified_only)
                ok = set()
                for e in edges:
                    h, o = _holder_other(world, e)
                    if e.relation == c["rel"] and o in targets:
                        ok.add(h)
                cands &= ok
        return cands
    if "attr" in form:
        out = set()
        for x in _solutions(world, form["of"], verified_only):
            spec = world.schema.entity_type(world.entities[x].type).attribute(form["attr"])
            out.add(spec.format(world.entities[x].attrs[form["attr"]]))
        return out
    if "compare" in form:
        (a,), (b,) = (_solutions(world, f, verified_only) for f in form["of"])
        spec = world.schema.entity_type(world.entities[a].type).attribute(form["compare"])
        va, vb = (spec.sort_key(world.entities[x].attrs[form["compare"]]) for x in (a, b))
        assert va != vb
        return {a if (va < vb) == (form["pick"] == "lower") else b}
    raise AssertionError(form)


def test_every_answer_is_the_unique_solution_on_the_graph(worlds, task_sets):
    for seed, tasks in task_sets.items():
        w = worlds[seed]
        assert tasks
        for t in tasks:
            for verified_only in (True, False):
                sols = _solutions(w, t.meta["form"], verified_only)
                assert len(sols) == 1, (t.question, sols)
                (sol,) = sols
                if "attr" in t.meta["form"]:
                    assert sol == t.answer and t.meta["answer_attribute"] == t.meta["form"]["attr"]
                    last = t.evidence[-1]
                    assert (
                        last.entity == t.meta["answer_entity"]
                        and last.attribute == t.meta["answer_attribute"]
                    )
                else:
                    assert w.entities[sol].name == t.answer
                    assert sol == t.meta["answer_entity"]


def test_evidence_edges_are_verified_and_stated_in_the_holder_article(worlds, task_sets):
    for seed, tasks in task_sets.items():
        w = worlds[seed]
        edges = {e.id: e for e in w.edges}
        for t in tasks:
            assert t.evidence
            for s in t.evidence:
                assert s.url == w.doc_of(s.entity).url
                if s.edge is None:
                    assert s.attribute in w.entities[s.entity].attrs
                    continue
                e = edges[s.edge]
                assert e.verified and e.relation == s.relation
                assert w.holder(e) == s.entity
                assert w.facts[e.id].sentence in w.doc_of(s.entity).text


def test_all_types_and_levels_present(task_sets):
    for tasks in task_sets.values():
        types = {t.type for t in tasks}
        assert types == {"chain", "obfuscated", "intersection", "comparison"}
        chain_hops = {t.hops for t in tasks if t.type == "chain"}
        assert chain_hops == {1, 2, 3, 4, 5}
        value_answers = [t for t in tasks if t.meta["answer_attribute"]]
        assert value_answers and all(t.type == "chain" for t in value_answers)
        for t in tasks:
            if t.type == "chain":
                assert t.level == t.hops
            else:
                assert t.level >= 3
        # a chain's question never contains its answer
        for t in tasks:
            if t.type != "comparison":
                assert f" {normalize_answer(t.answer)} " not in f" {normalize_answer(t.question)} "


def test_splits_do_not_leak(task_sets):
    for tasks in task_sets.values():
        by_split_q: dict[str, set[str]] = defaultdict(set)
        by_split_key: dict[str, set[tuple]] = defaultdict(set)
        for t in tasks:
            by_split_q[t.split].add(normalize_answer(t.question))
            path = tuple(s.relation or s.attribute for s in t.evidence)
            by_split_key[t.split].add((t.evidence[0].entity, path))
        assert set(by_split_q) == {"train", "dev", "test"}
        splits = sorted(by_split_q)
        for i, a in enumerate(splits):
            for b in splits[i + 1 :]:
                assert not by_split_q[a] & by_split_q[b]
                assert not by_split_key[a] & by_split_key[b]
        assert len({t.id for t in tasks}) == len(tasks)


def test_same_seed_same_bytes_and_seed_matters(worlds, tmp_path):
    w = worlds[1]
    a = build_tasks(w, SMALL, progress=False)
    b = build_tasks(w, SMALL, progress=False)
    dump = [json.dumps(t.to_dict(), sort_keys=True) for t in a]
    assert dump == [json.dumps(t.to_dict(), sort_keys=True) for t in b]
    c = build_tasks(w, dataclasses.replace(SMALL, seed=99), progress=False)
    assert [t.question for t in c] != [t.question for t in a]
    world_copy = tmp_path / "w"
    shutil.copytree(w.path, world_copy)
    p1 = save_tasks(a, world_copy, "x", SMALL.to_dict())
    bytes1 = (p1 / "tasks.jsonl").read_bytes()
    p2 = save_tasks(b, world_copy, "x", SMALL.to_dict(), overwrite=True)
    assert (p2 / "tasks.jsonl").read_bytes() == bytes1


def test_rejects_ambiguous_and_unverified(worlds):
    w = worlds[2]
    syn = Synthesizer(w, SMALL)
    # a person "born in" the city with the most verified births: ambiguous on purpose
    (rel, city), holders = max(
        ((k, v) for k, v in syn.gv.holders.items() if k[0] == "born_in"), key=lambda kv: len(kv[1])
    )
    assert len(holders) > 1
    form = {"find": "person", "where": [{"rel": rel, "to": {"entity": city}}]}
    step = syn.step(holders[0], rel, syn.gv.hop[(holders[0], rel)][0][1])
    assert not syn.check(Draft("intersection", 2, form, "Who was born there?", holders[0], [step]))
    # the same person's single hop is fine ...
    hop_form = {"hop": rel, "of": {"entity": holders[0]}}
    ok = Draft("chain", 1, hop_form, "Where was X born?", city, [step])
    assert syn.check(ok)
    # ... until its edge is unverified: then neither the check nor synthesis may use it
    edge_id = step.edge
    edges = [dataclasses.replace(e, verified=False) if e.id == edge_id else e for e in w.edges]
    w2 = World.load(w.path)
    w2.edges = edges  # a world whose verification failed this one edge
    syn2 = Synthesizer(w2, SMALL)
    assert not syn2.check(ok)
    for t in build_tasks(w2, SMALL, progress=False):
        assert all(s.edge != edge_id for s in t.evidence)


def test_aliases_never_collide(worlds, task_sets):
    for seed, tasks in task_sets.items():
        names = {normalize_answer(e.name) for e in worlds[seed].entities.values()}
        for t in tasks:
            for a in t.aliases:
                assert normalize_answer(a) not in names
                assert normalize_answer(a) != normalize_answer(t.answer)


def test_store_roundtrip_and_world_change(worlds, tmp_path):
    w = worlds[3]
    world_copy = tmp_path / "w"
    shutil.copytree(w.path, world_copy)
    result = synthesize(w, SMALL, progress=False)
    tasks = result.tasks
    path = save_tasks(tasks, world_copy, "default", SMALL.to_dict(), result.report())
    assert load_tasks(path) == tasks
    manifest = load_manifest(path)
    assert manifest["num_tasks"] == len(tasks)
    assert manifest["split"]["mode"] == "start" and set(manifest["split"]["leakage"]) == {"dev", "test"}
    assert set(manifest["rejected"]["total"]) <= set(REJECTIONS)
    assert sum(manifest["counts"]["type"].values()) == len(tasks)
    with pytest.raises(FileExistsError, match="--overwrite"):
        save_tasks(tasks, world_copy, "default", SMALL.to_dict())
    wm = world_copy / "manifest.json"
    data = json.loads(wm.read_text())
    data["content_hash"] = "0" * 64
    wm.write_text(json.dumps(data))
    with pytest.raises(TaskSetError, match="changed since"):
        load_tasks(path)
    with pytest.raises(TaskSetError, match="not a task set"):
        load_tasks(tmp_path / "nowhere")


def test_config_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="chian_per_hops"):
        TaskConfig.from_dict({"chian_per_hops": 3})
    with pytest.raises(ConfigError, match="splits"):
        TaskConfig(splits={"train": -1.0}).validate()
    TaskConfig(seed=5).to_yaml(tmp_path / "tasks.yaml")
    assert TaskConfig.from_yaml(tmp_path / "tasks.yaml") == TaskConfig(seed=5)


def test_planted_conflicting_statements_count_as_claims(tmp_path):
    noise = NoiseConfig(conflict_rate=0.2)
    w = build_world(WorldConfig(seed=8, num_entities=300, noise=noise), tmp_path / "w", progress=False)
    edges = {e.id: e for e in w.edges}
    conflicts = [r for r in w.noise if r["kind"] == "conflict"]
    assert conflicts
    syn = Synthesizer(w, SMALL)
    e = edges[conflicts[0]["edge"]]
    form = {"hop": e.relation, "of": {"entity": w.holder(e)}}
    assert evaluate(form, syn.gf) == {
        w.other_end(e),
        conflicts[0]["doc"],
    }  # two claimed answers: never a task
    disputed = {(w.holder(edges[r["edge"]]), edges[r["edge"]].relation) for r in conflicts}
    for t in build_tasks(w, SMALL, progress=False):
        assert all((s.entity, s.relation) not in disputed for s in t.evidence if s.edge is not None)


def test_reordered_constraints_are_the_same_task():
    a = {"rel": "born_in", "to": {"entity": "city/1"}}
    b = {"rel": "works_for", "to": {"entity": "company/2"}}
    assert form_key({"find": "person", "where": [a, b]}) == form_key({"find": "person", "where": [b, a]})
    x, y = {"entity": "award/1"}, {"entity": "award/2"}
    same = form_key({"compare": "year", "pick": "lower", "of": [x, y]})
    assert same == form_key({"compare": "year", "pick": "lower", "of": [y, x]})
    assert same != form_key({"compare": "year", "pick": "higher", "of": [x, y]})
