"""`searchgym demo` end to end through the CLI, shrunk by overrides: every stage runs for real (world, index, tasks,
oracle, tokenizer, SFT student and teacher, evaluation, TRAC-GRPO, evaluation, report), only smaller."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
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


def run(out: Path, *args: str) -> str:
    res = CliRunner().invoke(app, ["demo", "--out", str(out), *args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


@pytest.mark.slow
def test_demo_runs_every_stage_and_writes_the_report(tmp_path: Path):
    out = tmp_path / "demo"
    warmup = ["copy_warmup_steps=2", "copy_warmup_batch_size=3"]
    assert f"report: {out / 'report.md'}" in run(out, "--seed", "3", *SMALL, "sft_renamed_copies=1", *warmup)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and summary["held_out_tasks"] == 6 and summary["rl"]["steps"] == 2
    # both evaluations are eval directories of eval.harness, their numbers are the report's
    evals = {w: json.loads((out / f"eval_{w}" / "summary.json").read_text()) for w in ("before", "after")}
    for w, ev in evals.items():
        assert ev["tasks"] == 6 and ev["overall"]["success"] == summary["overall"][w]["mean"]
        assert ev["meta"]["world"] == str((out / "world").resolve()) and ev["meta"]["task_set"] == "demo"
        assert len((out / f"eval_{w}" / "trajectories.jsonl").read_text().splitlines()) == 6
    report = (out / "report.md").read_text()
    assert report.splitlines()[0] == "# SearchGym demo report"
    b, a, g = (summary["overall"][k] for k in ("before", "after", "gain"))
    assert f"Held-out success before RL: {b['mean']:.1%}. After RL: {a['mean']:.1%}" in report
    assert f"95 % paired bootstrap interval [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]" in report
    assert g["low"] <= g["mean"] <= g["high"] and g["mean"] == pytest.approx(a["mean"] - b["mean"])
    assert "RL ran 2 TRAC-GRPO steps (of 2 planned)" in report
    assert "| level | tasks | before | after | gain |" in report and "## Training curve" in report
    assert summary["training_curve"][-1]["steps"] == "2-2" and "trac/teacher_fallback" in summary["trac"]
    for png in ("training.png", "levels.png", "trac.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"
    for model in (
        "student_sft",
        "teacher_sft",
        "rl/final",
    ):  # `searchgym eval` reads the protocol from the card
        assert json.loads((out / model / "searchgym_card.json").read_text())["protocol"] == "tags"
    rl_cfg = (out / "rl" / "config.yaml").read_text()
    assert "tasks/demo-rl" in rl_cfg and "kind: hf" in rl_cfg and "teacher_sft" in rl_cfg
    # sft_task_share 0.5: the oracle transcripts and the RL task set are disjoint halves of the train split
    sft_ids = {json.loads(x)["task_id"] for x in (out / "transcripts.jsonl").read_text().splitlines()}
    rl_ids = {json.loads(x)["id"] for x in (out / "world/tasks/demo-rl/tasks.jsonl").read_text().splitlines()}
    assert sft_ids and rl_ids and not sft_ids & rl_ids
    sft_rows = [json.loads(x)["task_id"] for x in (out / "transcripts_sft.jsonl").read_text().splitlines()]
    assert sorted(sft_rows) == sorted([*sft_ids, *(f"{t}/renamed" for t in sft_ids)])  # one renamed copy each
    # the copy warm-up: 2 steps x 3 one-turn rows, then the student's SFT continues from its weights
    assert len((out / "copy_warmup.jsonl").read_text().splitlines()) == 6
    student = json.loads((out / "student_sft" / "sft_summary.json").read_text())
    assert student["init_model"] == str(out / "warmup_sft") and student["transcripts"] == len(sft_rows)
    cfg = (out / "demo_config.yaml").read_text()
    assert "rl_max_steps: 2" in cfg and "seed: 3" in cfg
    # a second run reuses the finished stages (same SFT weights) and redoes RL
    sft = (out / "student_sft" / "model.safetensors").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["demo", "--config", str(out / "demo_config.yaml"), "train.estimator=grpo"])
    assert res.exit_code == 0, res.output
    assert (out / "student_sft" / "model.safetensors").stat().st_mtime_ns == sft
    report = (out / "report.md").read_text()
    assert "RL ran 2 GRPO steps" in report and "trac.png" not in report  # no teacher: no TRAC diagnostics
    assert "teacher" not in yaml.safe_load((out / "rl" / "config.yaml").read_text())["teacher"]["path"]


def _result(out: Path) -> tuple[str, str, dict]:
    """The report up to its wall times (run directory replaced by OUT), summary.json, the after-eval's numbers and
    every RL step's metrics (loss, entropy, rewards, TRAC terms) but its wall times."""
    report = (out / "report.md").read_text().replace(str(out), "OUT").split("## Wall times")[0]
    ev = json.loads((out / "eval_after" / "summary.json").read_text())
    ev.pop("meta")
    steps = [json.loads(x) for x in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    ev["rl"] = [{k: v for k, v in m.items() if "time" not in k and "per_second" not in k} for m in steps]
    return report, (out / "summary.json").read_text(), ev


@pytest.mark.slow
def test_same_seed_same_report_numbers_on_a_loaded_machine(tmp_path: Path):
    args = ["--seed", "5", *SMALL, "rl_max_steps=4"]
    run(tmp_path / "idle", *args)
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        run(tmp_path / "loaded", *args)
    finally:
        for p in busy:
            p.kill()
            p.wait()
    idle, loaded = _result(tmp_path / "idle"), _result(tmp_path / "loaded")
    assert idle[1] == loaded[1]  # summary.json byte for byte
    assert idle[0] == loaded[0] and idle[2] == loaded[2]
    assert json.loads(idle[1])["rl"]["steps"] == 4
    timings = [json.loads((tmp_path / d / "timings.json").read_text()) for d in ("idle", "loaded")]
    assert timings[0] != timings[1]  # only the wall times differ


@pytest.mark.slow
def test_safety_stop_marks_the_report_incomplete_and_the_next_run_redoes_the_cut_stages(tmp_path: Path):
    out = tmp_path / "demo"
    run(out, *SMALL, "--minutes", "0.0001")
    first = (out / "report.md").read_text().splitlines()[0]
    assert first.startswith("# SearchGym demo report — INCOMPLETE: SFT student stopped at step 1 of 6")
    summary = json.loads((out / "summary.json").read_text())
    assert not summary["complete"] and summary["rl"]["steps"] == 1 and "TRAC-GRPO stopped" in first
    assert set(json.loads((out / "incomplete.json").read_text())) == {
        "SFT student",
        "SFT teacher",
        "TRAC-GRPO",
    }
    run(out, "--config", str(out / "demo_config.yaml"), "minutes=60")
    assert (out / "report.md").read_text().splitlines()[0] == "# SearchGym demo report"
    assert (
        json.loads((out / "summary.json").read_text())["rl"]["steps"] == 2
        and not (out / "incomplete.json").exists()
    )


def test_demo_rejects_unknown_override(tmp_path: Path):
    cmd = [sys.executable, "-m", "searchgym.cli", "demo", "--out", str(tmp_path / "d"), "rl_steps=3"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 2 and "error:" in res.stderr and "rl_steps" in res.stderr
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    "override, named",
    [
        ("train.env.max_turnz=3", "max_turnz"),
        ("env.max_turns=3", "train.env"),
        ("student.hidden_sizee=8", "hidden_sizee"),
        ("tasks.max_hopz=1", "max_hopz"),
        ("train.grpo.learning_ratee=1", "learning_ratee"),
        ("tasks.max_hops=0", "max_hops"),
    ],
)
def test_a_typo_in_any_demo_section_is_refused_before_anything_is_built(
    tmp_path: Path, override: str, named: str
):
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), override])
    assert res.exit_code == 2 and named in res.output and len(res.output.strip().splitlines()) == 1, (
        res.output
    )
    assert not (tmp_path / "d").exists()


def test_the_demo_rl_run_is_the_cpu_tiny_preset(tmp_path: Path):
    """One home for the demo's RL config: `searchgym train --config cpu-tiny` trains what the demo trains; the demo
    sets only where its inputs and outputs live, the seed and the step count."""
    from searchgym.demo.pipeline import DemoConfig, rl_config
    from searchgym.trainer.config import TrainConfig
    from searchgym.trainer.presets import resolve_preset

    preset = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).to_dict()
    run = rl_config(DemoConfig(seed=4, rl_max_steps=7), tmp_path, tmp_path / "rl").to_dict()
    assert run["data"]["world"] == str(tmp_path / "world") and run["model"]["path"] == str(
        tmp_path / "student_sft"
    )
    assert run["teacher"]["path"] == str(tmp_path / "teacher_sft") and run["grpo"]["max_steps"] == 7
    assert run["seed"] == 4 and run["output_dir"] == str(tmp_path / "rl")
    demo_set = {"data", "model", "output_dir", "seed"}
    assert {k: v for k, v in run.items() if k not in demo_set | {"teacher", "grpo"}} == {
        k: v for k, v in preset.items() if k not in demo_set | {"teacher", "grpo"}
    }
    same = {"max_steps", "extra"}
    assert {k: v for k, v in run["grpo"].items() if k not in same} == {
        k: v for k, v in preset["grpo"].items() if k not in same
    }
    assert {k: v for k, v in run["teacher"].items() if k != "path"} == {
        k: v for k, v in preset["teacher"].items() if k != "path"
    }
    # a teacher the user names is kept: a served one, or a local model at a path of their own
    served = [
        "train.teacher.kind=openai",
        "train.teacher.endpoint=http://127.0.0.1:9",
        "train.teacher.model=t",
    ]
    kept = rl_config(DemoConfig().override(served), tmp_path, tmp_path / "rl").teacher
    assert kept.kind == "openai" and kept.endpoint == "http://127.0.0.1:9"
    mine = DemoConfig().override(["train.teacher.path=/models/mine"])
    assert rl_config(mine, tmp_path, tmp_path / "rl").teacher.path == "/models/mine"
    # the evaluations use the same env and rollout budget (greedy)
    from searchgym.demo.pipeline import eval_config

    cfg = DemoConfig()
    ev = eval_config(cfg.train.env, cfg.train.rollout, 8)
    assert ev.env == cfg.train.env and ev.rollout.max_new_tokens == cfg.train.rollout.max_new_tokens
    assert ev.rollout.temperature == 0.0


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


def test_the_report_tabulates_the_teacher_fallback_share_without_calling_grpo_trac():
    from searchgym.demo.report import has_trac, trac_table

    grpo = [
        {"step": s, "reward": 0.0, "trac/teacher_fallback": 0.0, "trac/teacher_fallback_share": 0.0}
        for s in (1, 2)
    ]
    assert not has_trac(grpo)
    trac = [{"step": 1, "reward": 0.0, "trac/w_D/mean": 0.8, "trac/teacher_fallback": 1.0, "trac/teacher_fallback_share": 1.0},
            {"step": 2, "reward": 1.0, "trac/w_D/mean": 0.9, "trac/teacher_fallback": 0.0, "trac/teacher_fallback_share": 0.5}]  # fmt: skip
    assert has_trac(trac)
    assert trac_table(trac)["trac/teacher_fallback_share"] == {"all": 0.75, "last": 0.5, "steps": 2}
