"""The TRL data stream (real task rows in curriculum order) and the bounded rollout log, without training."""

from __future__ import annotations

import itertools
import json

import pytest

from searchgym.config import ConfigError
from searchgym.env.config import EnvConfig
from searchgym.env.prompts import render_prompt
from searchgym.tasks.curriculum import Curriculum, CurriculumConfig, StageSpec
from searchgym.trainer.curriculum_cb import CurriculumTracker
from searchgym.trainer.data import CurriculumStream, tasks_by_prompt
from searchgym.trainer.rollout_log import RolloutLog, token_texts
from searchgym.types import EvidenceStep, Task


def _task(i: int, level: int, question: str | None = None) -> Task:
    step = EvidenceStep(entity=f"e/{i}", url=f"https://x/{i}")
    return Task(
        f"t{i}", question or f"q{i}?", f"a{i}", (f"alias{i}",), "chain", level, level, "train", (step,)
    )


TASKS = [_task(i, 1 + i % 2) for i in range(40)]
STAGES = [StageSpec("one", [1]), StageSpec("two", [2])]


def test_stream_rows_are_real_tasks_one_draw_per_generation_batch():
    env = EnvConfig()
    tracker = CurriculumTracker(Curriculum(TASKS, CurriculumConfig(stages=STAGES, promote_after_steps=1)))
    stream = CurriculumStream(tracker, env, groups=3)
    rows = stream.rows()
    first = list(itertools.islice(rows, 3))
    by_id = {t.id: t for t in TASKS}
    for r in first:
        t = by_id[r["task_id"]]
        assert r == {
            "prompt": render_prompt(t, env),
            "task_id": t.id,
            "question": t.question,
            "gold": [t.answer, f"alias{t.id[1:]}"],
            "level": 1,
            "type": "chain",
            "stage": 1,
            "draw": 0,
        }
    tracker.record([True])
    tracker.update(step=1)  # promoted: the next draw comes from stage 2
    second = list(itertools.islice(rows, 3))
    assert (
        {r["draw"] for r in second} == {1} and {r["level"] for r in second} == {2} and second[0]["stage"] == 2
    )
    again = list(
        itertools.islice(stream.rows(), 6)
    )  # a resumed run streams from draw 0 again: identical rows
    assert again == first + second
    assert tasks_by_prompt(TASKS, env)[first[0]["prompt"]].id == first[0]["task_id"]


def test_two_tasks_with_one_prompt_are_refused():
    twins = [_task(1, 1, "Who?"), _task(2, 1, "Who?")]
    with pytest.raises(ConfigError, match="t1 and t2 have the same question"):
        tasks_by_prompt(twins, EnvConfig())


def test_token_texts_join_to_the_decoded_text(tiny_tok):
    ids = tiny_tok("Vell … the capital 😀 of Norland", add_special_tokens=False)["input_ids"]
    texts = token_texts(tiny_tok, ids)
    assert len(texts) == len(ids) and "".join(texts) == tiny_tok.decode(ids)
    assert "\ufffd" not in "".join(texts)


def test_rollout_log_stays_under_its_cap_and_keeps_the_newest_steps(tmp_path):
    path = tmp_path / "rollouts.jsonl"
    log = RolloutLog(path, tokenizer=None, max_bytes=20_000)
    line = lambda step, i: json.dumps({"step": step, "i": i, "pad": "x" * 400}) + "\n"  # noqa: E731
    for step in range(1, 201):
        log.append([line(step, i) for i in range(4)])
        assert path.stat().st_size <= 20_000
    steps = [json.loads(x)["step"] for x in path.read_text().splitlines()]
    assert steps[-4:] == [200] * 4 and steps == sorted(steps)
    kept = sorted(set(steps))
    assert all(steps.count(s) == 4 for s in kept)  # a step keeps all its rows or none
    assert kept[0] <= 10 and len(kept) >= 8  # old steps thinned out, not just cut off
    log.append([line(201, 0) * 60])  # one step larger than the cap: not written
    assert path.stat().st_size <= 20_000 and json.loads(path.read_text().splitlines()[-1])["step"] == 200
