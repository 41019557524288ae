"""The oracle solves tasks through the real engine and env; its transcripts replay exactly."""

from __future__ import annotations

import dataclasses

import pytest

from searchgym.agents.oracle import Oracle, oracle_env_config, save_transcripts
from searchgym.env.env import SearchEnv
from searchgym.index.build import engine_from_documents, load_engine
from searchgym.io import read_jsonl
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.synth import build_tasks
from searchgym.world.build import WorldConfig
from searchgym.world.noise import NoiseConfig

CFG = TaskConfig(chain_per_hops=8, obfuscated=16, intersection=10, comparison=12)


@pytest.fixture(scope="module", params=[4, 5])
def solved(request, tmp_path_factory):
    seed = request.param
    noise = NoiseConfig(distractor_rate=0.2, conflict_rate=0.05) if seed == 5 else NoiseConfig()
    world = build_world(
        WorldConfig(seed=seed, num_entities=400, noise=noise),
        tmp_path_factory.mktemp(f"w{seed}"),
        overwrite=True,
        progress=False,
    )
    tasks = build_tasks(world, dataclasses.replace(CFG, seed=seed), progress=False)
    engine = load_engine(world.path)
    return world, engine, tasks, Oracle(world, engine).run(tasks)


def test_oracle_solves_every_task_through_the_real_engine(solved):
    _, _, tasks, result = solved
    assert len(result.transcripts) == len(tasks) > 50
    assert not result.unsolved, result.unsolved
    table = result.table()
    assert table["all"]["success"] == 1.0
    assert {k for k in table if k.startswith("type/")} == {
        "type/chain",
        "type/comparison",
        "type/intersection",
        "type/obfuscated",
    }
    for tr, task in zip(result.transcripts, tasks, strict=True):
        kinds = [turn["action"].split("\n")[-1][:8] for turn in tr["turns"]]
        assert kinds[-1] == "<answer>" and "<search>" in kinds and "<access>" in kinds
        assert tr["turns"][-1]["action"].endswith(f"<answer>{task.answer}</answer>")


def test_transcripts_replay_exactly(solved, tmp_path):
    _, engine, tasks, result = solved
    path = tmp_path / "transcripts.jsonl"
    assert save_transcripts(path, result) == len(tasks)
    rows = list(read_jsonl(path))
    by_id = {t.id: t for t in tasks}
    for row in rows[:40]:
        env = SearchEnv(engine, oracle_env_config())
        assert env.reset(by_id[row["task_id"]]) == row["prompt"]
        for turn in row["turns"]:
            step = env.step(turn["action"])
            assert step.observation == turn["observation"]
        assert step.terminated and step.reward == row["reward"] == 1.0 and step.info.episode.format_ok
        assert step.info.episode.success == row["success"]


def test_unreachable_article_is_flagged_not_faked(solved):
    world, _, tasks, _ = solved
    task = next(t for t in tasks if t.type == "chain" and t.hops == 2)
    hidden = {s.url for s in task.evidence[1:]}  # the second holder article cannot be found
    engine = engine_from_documents([d for d in world.documents if d.url not in hidden])
    result = Oracle(world, engine).run([task])
    assert task.id in result.unsolved
    assert "no search surfaced" in result.unsolved[task.id]
    assert not result.transcripts[0]["success"]


def test_turn_budget_too_small_is_reported(solved):
    world, engine, tasks, _ = solved
    task = next(t for t in tasks if t.type == "chain" and t.hops == 5)
    result = Oracle(world, engine, oracle_env_config(max_turns=4)).run([task])
    assert "before an answer" in result.unsolved[task.id]
    assert len(result.transcripts[0]["turns"]) == 4
