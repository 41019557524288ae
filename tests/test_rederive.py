"""Task answers re-derived from the corpus text alone (tests/rederive.py, which shares no code with synthesis or
verification): noise, the issue-15 distractor example, symmetric relations, and schemas that must be refused.

Each world is checked the way a careful reader would: every sentence of every article (holder sentences,
other-end mentions, distractor articles, planted conflicts), then each task's logical form evaluated over what the
text says. A negative control shows the re-derivation catches what synthesis would miss if it ignored the corpus.
"""

from __future__ import annotations

import dataclasses
import sys
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from searchgym.pipeline import build_world
from searchgym.tasks import synth
from searchgym.tasks.config import TaskConfig
from searchgym.world.build import WorldConfig
from searchgym.world.noise import NoiseConfig
from searchgym.world.schema import DEFAULT_SCHEMA_PATH, SchemaError, parse_schema

sys.path.insert(0, str(Path(__file__).parent))
import rederive  # noqa: E402

SMALL = TaskConfig(chain_per_hops=40, obfuscated=120, intersection=120, comparison=60)

SYMMETRIC = """
  - name: spouse_of
    source: person
    target: person
    cardinality: symmetric
    coverage: 0.3
    label: Spouse
    phrasings: ["{source} is married to {target}.", "{source} and {target} are married."]
    query: ["married to", "spouse"]
    questions: ["Who is {x} married to?"]
    descriptors: ["the spouse of {x}"]
  - name: rival_of
    source: company
    target: company
    cardinality: symmetric
    coverage: 0.4
    label: Main rival
    phrasings: ["{source} competes head to head with {target}.", "The main rival of {source} is {target}."]
    query: ["rival", "competes with"]
    questions: ["Which company is the main rival of {x}?"]
    descriptors: ["the main rival of {x}"]
"""


def _schema(tmp_path: Path, extra: str) -> Path:
    p = tmp_path / "schema.yaml"
    p.write_text(
        DEFAULT_SCHEMA_PATH.read_text(encoding="utf-8").rstrip("\n") + "\n" + extra, encoding="utf-8"
    )
    return p


def _violations(world_dir: Path, tasks) -> Counter:
    counts = rederive.check_tasks(world_dir, [dataclasses.asdict(t) for t in tasks])
    assert counts["tasks"] == len(tasks) > 0
    return Counter({k: v for k, v in counts.items() if k != "tasks"})


def test_default_schema_without_noise_is_clean(tmp_path: Path):
    w = build_world(WorldConfig(seed=5, num_entities=1500), tmp_path / "w", progress=False)
    assert _violations(w.path, synth.build_tasks(w, SMALL, progress=False)) == Counter()


@pytest.fixture(scope="module")
def distractor_world(tmp_path_factory):
    """The issue-15 example: 3,600 entities, seed 2, noise.distractor_rate=0.1."""
    cfg = WorldConfig(seed=2, num_entities=3600, noise=NoiseConfig(distractor_rate=0.1))
    return build_world(cfg, tmp_path_factory.mktemp("d") / "w", progress=False)


def test_distractor_articles_give_no_task_a_second_answer(distractor_world):
    tasks = synth.build_tasks(distractor_world, TaskConfig(seed=2), progress=False)
    assert _violations(distractor_world.path, tasks) == Counter()


def test_negative_control_tasks_checked_on_the_graph_alone_are_caught(distractor_world, monkeypatch):
    """Synthesis that ignores the corpus (full graph = verified graph) makes tasks the re-derivation rejects:
    the check above could fail."""
    init = synth.Synthesizer.__init__

    def graph_only(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.gf = self.gv

    monkeypatch.setattr(synth.Synthesizer, "__init__", graph_only)
    tasks = synth.build_tasks(distractor_world, TaskConfig(seed=2), progress=False)
    assert sum(_violations(distractor_world.path, tasks).values()) > 0


def test_noise_conflicts_and_distractors_together_are_clean(tmp_path: Path):
    cfg = WorldConfig(seed=3, num_entities=2000, noise=NoiseConfig(distractor_rate=0.08, conflict_rate=0.08))
    w = build_world(cfg, tmp_path / "w", progress=False)
    assert _violations(w.path, synth.build_tasks(w, SMALL, progress=False)) == Counter()


def test_symmetric_relations_are_stated_by_both_partners_and_tasks_stay_unique(tmp_path: Path):
    schema = _schema(tmp_path, SYMMETRIC)
    cfg = WorldConfig(
        seed=7,
        num_entities=2000,
        schema=str(schema),
        noise=NoiseConfig(distractor_rate=0.05, conflict_rate=0.05),
    )
    w = build_world(cfg, tmp_path / "w", progress=False)
    for rel in ("spouse_of", "rival_of"):
        pairs = {(e.source, e.target) for e in w.edges if e.relation == rel}
        assert len(pairs) >= 50
        assert all((t, s) in pairs for s, t in pairs)  # both directions are edges
        partners = defaultdict(set)
        for s, t in pairs:
            partners[s].add(t)
        assert all(len(p) == 1 for p in partners.values())  # a matching: one partner each
        for e in w.edges:
            if (
                e.relation == rel and e.verified
            ):  # each partner's own article states the pair, naming the other
                sentence = w.facts[e.id].sentence
                assert w.holder(e) == e.source and sentence in w.doc_of(e.source).text
                assert w.entities[e.target].name in sentence
    tasks = synth.build_tasks(w, SMALL, progress=False)
    used = Counter(s.relation for t in tasks for s in t.evidence if s.relation in ("spouse_of", "rival_of"))
    assert used["spouse_of"] > 0 and used["rival_of"] > 0
    assert _violations(w.path, tasks) == Counter()


@pytest.mark.parametrize("cardinality", ["1-1", "n-1"])
def test_a_spouse_of_worded_from_the_wrong_end_is_refused(tmp_path: Path, cardinality: str):
    """Issue 15: "{target} is married to {source}." as the other end's mention makes B's article claim B is
    married to A while B's own holder sentence says B is married to C. The schema is refused, naming the
    phrasing."""
    bad = f"""
  - name: spouse_of
    source: person
    target: person
    cardinality: {cardinality}
    label: Spouse
    phrasings: ["{{source}} is married to {{target}}."]
    other_phrasings: ["{{target}} is married to {{source}}."]
    query: ["married to"]
    questions: ["Who is {{x}} married to?"]
    descriptors: ["the spouse of {{x}}"]
"""
    text = _schema(tmp_path, bad).read_text(encoding="utf-8")
    with pytest.raises(SchemaError) as err:
        parse_schema(text, where="schema.yaml")
    msg = str(err.value)
    assert "'{target} is married to {source}.'" in msg and "spouse_of" in msg and "symmetric" in msg
    # declared symmetric (and stated only by `phrasings`) the same wording is accepted
    good = text.replace(
        f"cardinality: {cardinality}\n    label: Spouse", "cardinality: symmetric\n    label: Spouse"
    )
    good = good.replace('    other_phrasings: ["{target} is married to {source}."]\n', "")
    assert parse_schema(good).relation("spouse_of").symmetric


def test_a_wording_that_reads_as_another_relation_is_refused(tmp_path: Path):
    bad = """
  - name: admires
    source: person
    target: city
    cardinality: n-1
    label: Admired city
    phrasings: ["{source} was born in {target}."]
    other_phrasings: ["{target} is admired by {source}."]
    query: ["admires"]
    questions: ["Which city does {x} admire?"]
    descriptors: ["the city {x} admires"]
"""
    with pytest.raises(SchemaError, match=r"'\{source\} was born in \{target\}\.' reads as born_in"):
        parse_schema(_schema(tmp_path, bad).read_text(encoding="utf-8"))
