"""Every export format is written and read back by the library its consumers use; the CLI drives the whole flow."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.integrations.export import EXPORTERS, export_tasks, read_back
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.synth import build_tasks
from searchgym.world.build import WorldConfig

CFG = TaskConfig(chain_per_hops=4, obfuscated=8, intersection=5, comparison=6)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        WorldConfig(seed=11, num_entities=300), tmp_path_factory.mktemp("w") / "w", progress=False
    )


@pytest.fixture(scope="module")
def tasks(world):
    return build_tasks(world, CFG, progress=False)


@pytest.mark.parametrize("fmt", sorted(EXPORTERS))
def test_export_reads_back(fmt, tasks, tmp_path):
    out = export_tasks(tasks, fmt, tmp_path / f"out.{fmt}")
    rows = read_back(fmt, out)
    assert len(rows) == len(tasks)
    first, task = rows[0], tasks[0]
    if fmt in ("jsonl", "parquet", "hf"):
        assert first["id"] == task.id and first["answer"] == task.answer
        assert [s["url"] for s in first["evidence"]] == [s.url for s in task.evidence]
        meta = first["meta"] if fmt == "jsonl" else json.loads(first["meta"])
        assert meta["form"] == task.meta["form"]
    elif fmt == "verl":
        assert set(first) == {"data_source", "prompt", "ability", "reward_model", "extra_info"}
        assert first["reward_model"]["style"] == "rule"
        assert first["reward_model"]["ground_truth"]["target"] == task.answers
        assert first["prompt"][-1]["role"] == "user" and task.question in first["prompt"][-1]["content"]
        assert first["extra_info"]["task_id"] == task.id
    elif fmt == "trl":
        assert first["prompt"][-1]["role"] == "user" and task.question in first["prompt"][-1]["content"]
        assert first["answers"] == task.answers
    else:
        assert first["question"] == task.question and first["golden_answers"] == task.answers


def test_unknown_format_is_refused(tasks, tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'csv'"):
        export_tasks(tasks, "csv", tmp_path / "x.csv")


def test_cli_build_export_show_oracle(world, tmp_path):
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "tasks",
            "build",
            str(world.path),
            "--name",
            "cli",
            "--set",
            "chain_per_hops=3",
            "--set",
            "obfuscated=4",
            "--set",
            "intersection=3",
            "--set",
            "comparison=4",
        ],
    )
    assert r.exit_code == 0, r.output
    taskset = world.path / "tasks" / "cli"
    r = runner.invoke(app, ["tasks", "build", str(world.path), "--name", "cli"])
    assert r.exit_code != 0 and "--overwrite" in r.output
    out = tmp_path / "v.parquet"
    r = runner.invoke(app, ["tasks", "export", str(taskset), "--format", "verl", "--out", str(out)])
    assert r.exit_code == 0 and "rows (verl)" in r.output, r.output
    task_id = json.loads((taskset / "tasks.jsonl").read_text().splitlines()[-1])["id"]
    r = runner.invoke(app, ["tasks", "show", str(taskset), task_id])
    assert r.exit_code == 0 and "Evidence:" in r.output and "https://" in r.output, r.output
    r = runner.invoke(app, ["tasks", "show", str(taskset), "nope"])
    assert r.exit_code != 0 and "no task 'nope'" in r.output
    r = runner.invoke(app, ["tasks", "oracle", str(taskset)])
    assert r.exit_code == 0 and "100.0%" in r.output, r.output
    assert (taskset / "transcripts.jsonl").exists()
