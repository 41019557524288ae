"""The environment over a real generated world, its real index and real synthesized tasks."""

import json

import pytest

from searchgym.env import BatchEnv, EnvConfig, SearchEnv
from searchgym.index.build import engine_from_documents
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.synth import build_tasks
from searchgym.world.build import WorldConfig


@pytest.fixture(scope="module")
def world_setup(tmp_path_factory):
    world = build_world(
        WorldConfig(seed=3, num_entities=300), tmp_path_factory.mktemp("w") / "world", progress=False
    )
    cfg = TaskConfig(seed=0, max_hops=3, chain_per_hops=4, obfuscated=4, intersection=4, comparison=4)
    tasks = build_tasks(world, cfg, progress=False)
    assert len(tasks) >= 10
    return world, engine_from_documents(world.documents), tasks


def call(name, **args):
    return "<tool_call>" + json.dumps({"name": name, "arguments": args}) + "</tool_call>"


def evidence_turns(world, task, protocol):
    """A scripted agent that searches the first evidence entity, opens every evidence article, then answers."""
    first = world.entities[task.evidence[0].entity].name
    if protocol == "tags":
        turns = [f"<think>find {first}</think><search>{first}</search>"]
        turns += [f"<think>read</think><access>{url}</access>" for url in task.evidence_urls]
        return turns + [f"<think>done</think><answer>{task.answer}</answer>"]
    return [
        call("search", query=first),
        *(call("access", url=u) for u in task.evidence_urls),
        call("answer", answer=task.answer),
    ]


@pytest.mark.parametrize("protocol", ["tags", "json"])
def test_evidence_following_agent_scores_full_marks(world_setup, protocol):
    world, engine, tasks = world_setup
    for task in tasks:
        env = SearchEnv(engine, EnvConfig(protocol=protocol, max_turns=len(task.evidence_urls) + 2))
        env.reset(task)
        results = [env.step(turn) for turn in evidence_turns(world, task, protocol)]
        search_info, last = results[0].info, results[-1]
        assert search_info.surfaced_evidence == [u for u in task.evidence_urls if u in search_info.hit_urls]
        assert all(r.info.opened_evidence for r in results[1:-1])
        ep = last.info.episode
        assert last.terminated and last.reward == 1.0 and ep.scores["em"] == 1.0 and ep.format_ok, (
            task.id,
            ep,
        )
        assert ep.success and ep.opened_recall == ep.evidence_recall == 1.0
        assert ep.accesses == len(task.evidence_urls) and ep.searches == 1


def test_batch_over_real_tasks_matches_single_episodes(world_setup):
    world, engine, tasks = world_setup
    cfg = EnvConfig(max_turns=8)
    scripts = [evidence_turns(world, t, "tags") for t in tasks]
    batch = BatchEnv(engine, cfg)
    prompts = batch.reset(tasks)
    got: list[list] = [[] for _ in tasks]
    step = 0
    while not batch.all_done:
        actions = [scripts[i][step] if i in batch.active else None for i in range(len(tasks))]
        for i, res in enumerate(batch.step(actions)):
            if res is not None:
                got[i].append(res)
        step += 1
    for task, script, prompt, results in zip(tasks, scripts, prompts, got, strict=True):
        env = SearchEnv(engine, cfg)
        assert env.reset(task) == prompt
        assert [env.step(turn) for turn in script[: len(results)]] == results
