"""Readable questions, wording that fits the answer's type, entity-disjoint splits and what `tasks build` prints
(issue 15), on one 1,500-entity world with distractors and conflicts."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.forms import type_nouns
from searchgym.tasks.synth import REJECTIONS, synthesize
from searchgym.tasks.templates import MAX_NESTED_CHARS, clause_depth, readability
from searchgym.world.build import WorldConfig
from searchgym.world.noise import NoiseConfig

GARDEN_PATH = (
    "What is the country that the region where the city where the organization that the company Viombu Kemain "
    "works for belongs to is based lies belongs to?"
)
CFG = TaskConfig(seed=1, chain_per_hops=60, obfuscated=120, intersection=100, comparison=60)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    cfg = WorldConfig(seed=2, num_entities=1500, noise=NoiseConfig(distractor_rate=0.1, conflict_rate=0.02))
    return build_world(cfg, tmp_path_factory.mktemp("q") / "w", progress=False)


@pytest.fixture(scope="module")
def result(world):
    return synthesize(world, CFG, progress=False)


def _nouns(world) -> frozenset[str]:
    return frozenset(n.split()[0] for n in type_nouns(world.schema).values())


def test_clause_depth_scores_the_issue_garden_path_and_a_flat_description():
    assert clause_depth(GARDEN_PATH) == 4
    assert clause_depth("Name the person who was born in Walheim and whose birth year is 1950.") == 1
    assert (
        clause_depth("Which person has parent Hen Bepul and is a citizen of Kindesh?", frozenset({"person"}))
        == 0
    )


def test_no_question_stacks_relative_clauses_and_deep_chains_go_step_by_step(world, result):
    nouns = _nouns(world)
    assert {t.level for t in result.tasks} == {1, 2, 3, 4, 5}
    for t in result.tasks:
        assert clause_depth(t.question, nouns) <= 1, t.question
    deep = [t for t in result.tasks if t.type == "chain" and t.hops >= 4]
    stepwise = [t for t in deep if ", then " in t.question]
    assert len(stepwise) > len(deep) / 2  # most deep chains are asked one hop per clause
    for t in stepwise:
        assert re.match(r"(Start from .+?\. )?(Find|Take|Look up) ", t.question), t.question
    for t in (
        t for t in deep if ", then " not in t.question
    ):  # the rest nest possessives around at most one clause, kept short
        assert "then" not in t.question and len(t.question) <= MAX_NESTED_CHARS + 50, t.question


def test_wh_words_fit_the_answer_type(world, result):
    asked_who = 0
    for t in result.tasks:
        answer = t.meta.get("answer_entity")
        if not answer or t.type == "comparison" or "attr" in t.meta["form"]:
            continue
        person = world.entities[answer].type == "person"
        last = re.split(r"(?<=[.?!])\s+", t.question)[-1]
        if person:
            assert not last.startswith("What"), t.question  # never "What is the author of X?" for a person
            asked_who += last.startswith("Who")
        else:
            assert not last.startswith("Who is "), t.question  # "Who employs X?" (a company) is the schema's
    assert asked_who > 10


def test_readability_is_reported_per_level(world, result):
    table = readability(result.tasks, _nouns(world))
    assert set(table) == {"all", *(f"level/{k}" for k in range(1, 6))}
    assert table["all"]["tasks"] == len(result.tasks)
    assert sum(table[f"level/{k}"]["tasks"] for k in range(1, 6)) == len(result.tasks)
    assert all(row["max_clause_depth"] <= 1 for row in table.values())
    assert table["level/5"]["multi_sentence"] > table["level/1"]["multi_sentence"]
    assert table["level/5"]["mean_chars"] > table["level/1"]["mean_chars"]


def _entities(t) -> set[str]:
    """Every entity id a task names or passes through, read from its logical form and evidence."""
    out = {s.entity for s in t.evidence}

    def walk(f) -> None:
        if isinstance(f, dict):
            if "entity" in f:
                out.add(f["entity"])
            for v in f.values():
                walk(v)
        elif isinstance(f, list):
            for v in f:
                walk(v)

    walk(t.meta["form"])
    if t.meta.get("answer_entity"):
        out.add(t.meta["answer_entity"])
    return out


def test_entity_disjoint_split_shares_no_entity_with_train(world, result):
    start = result.split["leakage"]["test"]
    assert result.split["mode"] == "start" and start["entities_in_train"] > 0.2  # the default mode leaks
    disjoint = synthesize(world, dataclasses.replace(CFG, split_mode="entity"), progress=False)
    train = set().union(*(_entities(t) for t in disjoint.tasks if t.split == "train"))
    for split in ("dev", "test"):
        held = [t for t in disjoint.tasks if t.split == split]
        assert held and not train & set().union(*(_entities(t) for t in held))
        assert all(v == 0 for k, v in disjoint.split["leakage"][split].items() if k != "tasks")
    assert disjoint.split["dropped"] == len(result.tasks) - len(disjoint.tasks) > 0


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("│").split("│")]


def test_tasks_build_prints_rejections_per_relation_and_reason_and_the_leakage(world):
    sizes = ["--set", "chain_per_hops=40", "--set", "obfuscated=100", "--set", "intersection=100"]
    cmd = ["tasks", "build", str(world.path), "--name", "e", "--set", "split_mode=entity", *sizes]
    res = CliRunner().invoke(app, cmd)
    assert res.exit_code == 0, res.output
    manifest = json.loads((world.path / "tasks" / "e" / "manifest.json").read_text())
    rejected = manifest["rejected"]
    reasons = sorted(rejected["by_relation"])
    assert reasons and set(reasons) <= set(REJECTIONS)
    rows = {c[0]: c[1:] for c in map(_cells, res.output.splitlines()) if len(c) == len(reasons) + 1}
    relations = {r for per in rejected["by_relation"].values() for r in per}
    assert relations <= set(rows)  # one row per relation, its name not cut off
    for rel in relations:
        assert rows[rel] == [str(rejected["by_relation"][x].get(rel, 0)) for x in reasons]
    assert rows["drafts"] == [str(rejected["total"][x]) for x in reasons]
    for x in reasons:  # a draft counts once per relation it uses, so the draft total is at most the row sum
        assert 0 < rejected["total"][x] <= sum(rejected["by_relation"][x].values())
    assert "Split mode 'entity'" in res.output
    dropped = manifest["split"]["dropped"]
    assert dropped > 0 and f"({dropped} tasks dropped to keep splits entity-disjoint)" in " ".join(
        res.output.split()
    )
    leak = {c[0]: c[1:] for c in map(_cells, res.output.splitlines()) if len(c) == 6}
    for split in ("dev", "test"):
        assert leak[split] == [
            str(manifest["split"]["leakage"][split]["tasks"]),
            "0.0%",
            "0.0%",
            "0.0%",
            "0.0%",
        ]
