"""`searchgym demo` end to end through the CLI, shrunk by overrides: every stage runs for real (world, index, tasks,
oracle, tokenizer, SFT student and teacher, evaluation, TRAC-GRPO, evaluation, report), only smaller."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchgym.cli import app

SMALL = [
    "num_entities=80",
    "tasks.chain_per_hops=30",
    "vocab_size=1024",
    "student={hidden_size: 32, num_layers: 1, num_heads: 2, num_kv_heads: 1, intermediate_size: 64}",
    "student_sft_steps=6",
    "teacher_sft_steps=2",
    "eval_tasks=6",
    "rl_max_steps=2",
    "train.grpo.per_device_train_batch_size=4",
    "train.grpo.num_generations=2",
    "train.rollout.max_new_tokens=12",
    "sft_task_share=0.5",
]


@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_the_report(tmp_path: Path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--seed", "3", *SMALL])
    assert res.exit_code == 0, res.output
    assert f"report: {out / 'report.md'}" in res.output
    before = json.loads((out / "eval_before.json").read_text())
    after = json.loads((out / "eval_after.json").read_text())
    assert before["n"] == after["n"] == 6
    report = (out / "report.md").read_text()
    assert f"Held-out success before RL: {before['success']:.1%}. After RL: {after['success']:.1%}" in report
    assert "RL ran 2 TRAC-GRPO steps" in report
    for png in ("training.png", "levels.png", "trac.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    metrics = [json.loads(x) for x in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert any(k.startswith("trac/") for k in metrics[0])
    # sft_task_share 0.5: the oracle transcripts and the RL task set are disjoint halves of the train split
    sft_ids = {json.loads(x)["task_id"] for x in (out / "transcripts.jsonl").read_text().splitlines()}
    rl_ids = {json.loads(x)["id"] for x in (out / "world/tasks/demo-rl/tasks.jsonl").read_text().splitlines()}
    assert sft_ids and rl_ids and not sft_ids & rl_ids
    assert "tasks/demo-rl" in (out / "rl" / "config.yaml").read_text()
    cfg = (out / "demo_config.yaml").read_text()
    assert "rl_max_steps: 2" in cfg and "seed: 3" in cfg
    # a second run reuses the finished stages (same SFT weights) and redoes RL
    sft = (out / "student_sft" / "model.safetensors").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["demo", "--config", str(out / "demo_config.yaml"), "train.estimator=grpo"])
    assert res.exit_code == 0, res.output
    assert (out / "student_sft" / "model.safetensors").stat().st_mtime_ns == sft
    report = (out / "report.md").read_text()
    assert "RL ran 2 GRPO steps" in report and "trac.png" not in report  # no teacher: no TRAC diagnostics


def test_demo_rejects_unknown_override(tmp_path: Path):
    cmd = [sys.executable, "-m", "searchgym.cli", "demo", "--out", str(tmp_path / "d"), "rl_steps=3"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "error:" in res.stderr and "rl_steps" in res.stderr
    assert not (tmp_path / "d").exists()


def test_split_train_tasks_is_disjoint_and_seeded():
    from types import SimpleNamespace

    from searchgym.demo.pipeline import split_train_tasks

    tasks = [SimpleNamespace(id=f"t{i:02d}", split="test" if i % 5 == 0 else "train") for i in range(40)]
    train = [t for t in tasks if t.split == "train"]
    assert split_train_tasks(tasks, 1.0, 0) == (train, train)  # share 1: today's behaviour, same order
    sft, rl = split_train_tasks(tasks, 0.5, 0)
    assert len(sft) == len(rl) == 16 and {t.id for t in sft}.isdisjoint(t.id for t in rl)
    assert sorted(t.id for t in sft + rl) == sorted(t.id for t in train)
    assert split_train_tasks(tasks, 0.5, 0) == (sft, rl) and split_train_tasks(tasks, 0.5, 1) != (sft, rl)
    with pytest.raises(ValueError, match="sft_task_share"):
        split_train_tasks(tasks, 0.0, 0)
