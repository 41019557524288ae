"""Curriculum: stage pools by level, deterministic sampling, promotion rules, resume."""

from __future__ import annotations

import pytest

from searchgym.config import ConfigError
from searchgym.tasks.curriculum import Curriculum, CurriculumConfig, StageSpec
from searchgym.types import EvidenceStep, Task


def _task(i: int, kind: str, level: int, split: str = "train") -> Task:
    step = EvidenceStep(entity=f"e/{i}", url=f"https://x/{i}")
    return Task(f"{kind}-{i}", f"q{i}?", f"a{i}", (), kind, level, level, split, (step,))


@pytest.fixture
def tasks() -> list[Task]:
    out = []
    kinds = [
        ("chain", 1),
        ("chain", 2),
        ("chain", 3),
        ("chain", 5),
        ("obfuscated", 4),
        ("intersection", 3),
        ("comparison", 3),
        ("comparison", 4),
    ]
    for i in range(400):
        kind, level = kinds[i % len(kinds)]
        out.append(_task(i, kind, level, "test" if i % 10 == 0 else "train"))
    return out


def test_stage_one_then_two(tasks):
    cur = Curriculum(tasks, CurriculumConfig(min_steps=3, window=3, promote_threshold=0.5))
    first = cur.sample(64)
    assert {t.level for t in first} <= {1, 2} and {t.type for t in first} == {"chain"}
    assert all(t.split == "train" for t in first)
    assert not cur.update(0.9, step=1)  # too early: min_steps
    assert not cur.update(0.1, step=2)
    assert not cur.update(0.2, step=3)  # moving mean 0.4 < 0.5
    assert not cur.update(0.9, step=4)  # 0.4 again
    assert cur.update(0.9, step=5)  # mean of the last 3 = 0.67
    assert cur.stage == 1
    second = cur.sample(400)
    late = [t for t in second if t.level >= 3]
    assert {t.type for t in late} == {"chain", "obfuscated", "intersection", "comparison"}
    replayed = [t for t in second if t.level <= 2]
    assert 0 < len(replayed) < 0.25 * len(second)  # replay 0.1
    assert not cur.update(1.0, step=100)  # last stage: nothing to promote to


def test_promotion_after_n_steps(tasks):
    cur = Curriculum(tasks, CurriculumConfig(promote_threshold=1.1, promote_after_steps=5))
    assert [cur.update(0.0, s) for s in range(1, 7)] == [False, False, False, False, True, False]


def test_deterministic_and_resumable(tasks):
    cfg = CurriculumConfig(seed=3)
    a, b = Curriculum(tasks, cfg), Curriculum(tasks, cfg)
    assert [t.id for t in a.sample(20)] == [t.id for t in b.sample(20)]
    a.update(0.3, 1)
    state = a.state_dict()
    nxt = [t.id for t in a.sample(20)]
    c = Curriculum(tasks, cfg)
    c.load_state_dict(state)
    assert [t.id for t in c.sample(20)] == nxt
    other = Curriculum(tasks, CurriculumConfig(seed=4))
    other.sample(20)
    assert [t.id for t in other.sample(20)] != nxt


def test_bad_stage_is_explained(tasks):
    cfg = CurriculumConfig(stages=[StageSpec("s", [9], {})])
    with pytest.raises(ConfigError, match="levels \\[9\\]"):
        Curriculum(tasks, cfg)
    with pytest.raises(ConfigError, match="levels it covers"):
        Curriculum(tasks, CurriculumConfig(stages=[StageSpec("s", [], {})]))


def test_config_yaml_roundtrip(tmp_path):
    CurriculumConfig(replay=0.2).to_yaml(tmp_path / "c.yaml")
    cfg = CurriculumConfig.from_yaml(tmp_path / "c.yaml")
    assert cfg == CurriculumConfig(replay=0.2)
    assert cfg.stages[0].levels == [1, 2] and cfg.stages[1].levels == [3, 4, 5]


def test_a_draw_made_again_after_a_promotion_gives_the_same_tasks(tasks):
    """accelerate fetches one batch ahead: a checkpoint can hold a draw made before the promotion it records."""
    cfg = CurriculumConfig(seed=1, promote_after_steps=1)
    a = Curriculum(tasks, cfg)
    first = [t.id for t in a.sample(16)]
    ahead = [t.id for t in a.sample(16)]  # draw 1, made in stage 1
    assert a.update(0.0, step=1) and a.stage == 1  # promoted after it was drawn
    state = a.state_dict()
    assert state["draw_stages"] == [0, 0]
    b = Curriculum(tasks, cfg)
    b.load_state_dict(state)
    assert [t.id for t in b.draw(0, 16)] == first and [t.id for t in b.draw(1, 16)] == ahead
    assert {t.level for t in b.draw(1, 16)} <= {1, 2}  # the recorded stage, not the current one
    later = b.draw(2, 16)  # a new draw: the current stage (with a little replay of stage 1)
    assert any(t.level >= 3 for t in later) and b.draw_stages == [0, 0, 1]
    with pytest.raises(ValueError, match="draw in order"):
        b.draw(5, 4)


def test_config_ranges_are_checked_on_construction():
    for bad in (
        {"window": 0},
        {"min_steps": -1},
        {"promote_after_steps": -2},
        {"replay": 1.0},
        {"stages": []},
    ):
        with pytest.raises(ConfigError):
            CurriculumConfig.from_dict(bad)
