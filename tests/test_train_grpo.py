"""Short real training runs on TRL: GRPO and TRAC-GRPO with SearchGym's rollout_func, the curriculum, masks,
and resume after SIGKILL. One tiny world and one SFT-warmed tiny model are shared by the whole module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from searchgym.trainer.config import TrainConfig
from searchgym.trainer.grpo import build_run, checkpoints, is_complete, last_complete_checkpoint, read_metrics

pytestmark = pytest.mark.slow

PROMPT = (
    "Answer by searching. One action per turn: <search> query </search>, <access> url </access> or "
    "<answer> answer </answer>.\nQuestion: {question}\n"
)
ENV = {
    "max_turns": 5,
    "topk": 2,
    "doc_chars": 80,
    "page_chars": 800,
    "require_think": False,
    "prompt": PROMPT,
}
TINY = {"hidden_size": 64, "num_layers": 2, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 128}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny world with a 4-task training set and a student SFT-overfit on those tasks' oracle transcripts:
    sampled rollouts then succeed sometimes, so groups have reward variance and GRPO has a gradient."""
    from searchgym.agents.oracle import Oracle, save_transcripts
    from searchgym.env.env import EnvConfig
    from searchgym.index.build import build_index, load_engine
    from searchgym.pipeline import build_world
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.store import save_tasks
    from searchgym.tasks.synth import build_tasks
    from searchgym.trainer.sft import SFTRunConfig, run_sft
    from searchgym.world.build import WorldConfig

    torch.set_num_threads(1)  # tiny matmuls: threads only contend on a shared 2-core machine
    root = tmp_path_factory.mktemp("train")
    world = build_world(WorldConfig(seed=0, num_entities=200), root / "world", progress=False)
    build_index(root / "world", progress=False)
    tcfg = TaskConfig(max_hops=2, chain_per_hops=30, obfuscated=0, intersection=0, comparison=0)
    tasks = [t for t in build_tasks(world, tcfg, progress=False) if t.split == "train"]
    oracle = Oracle(world, load_engine(root / "world"), EnvConfig.from_dict(ENV))
    result = oracle.run(tasks)
    solved = {r["task_id"] for r in result.transcripts if r["success"]}
    picked = [t for lvl in (1, 2) for t in [t for t in tasks if t.level == lvl and t.id in solved][:2]]
    assert len(picked) == 4
    save_tasks(picked, root / "world", "t", tcfg.to_dict())
    result.transcripts = [r for r in result.transcripts if r["task_id"] in {t.id for t in picked}]
    save_transcripts(root / "transcripts.jsonl", result)
    scfg = SFTRunConfig(
        max_steps=60,
        batch_size=4,
        vocab_size=600,
        model_overrides=TINY,
        learning_rate=1.5e-2,
        strip_think=True,
    )
    summary = run_sft(root / "world", root / "transcripts.jsonl", root / "student", scfg)
    return {"root": root, "sft": summary}


def make_cfg(setup, out: str, **over) -> TrainConfig:
    root = setup["root"]
    base = {
        "data": {"world": str(root / "world"), "tasks": str(root / "world" / "tasks" / "t")},
        "model": {"path": str(root / "student")},
        "grpo": {
            "max_steps": 3,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "save_steps": 1,
            "max_completion_length": 1000,
        },
        "env": ENV,
        "rollout": {"max_new_tokens": 64, "max_total_tokens": 1000},
        "curriculum": {
            "stages": [{"name": "s1", "levels": [1]}, {"name": "s2", "levels": [2]}],
            "promote_after_steps": 2,
            "min_steps": 100,
        },
        "equal_groups": "count",
        "output_dir": str(root / out),
    }
    cfg = TrainConfig.from_dict(base)
    return cfg.override([f"{k}={v}" for k, v in over.items()])


def _record_rollouts(trainer) -> list:
    """Wrap the trainer's rollout_func so every rollout result is also appended to the returned list."""
    raw: list = []
    rollout = trainer.rollout_func

    def spy(prompts, trainer):
        out = rollout(prompts, trainer)
        raw.append(out)
        return out

    trainer.rollout_func = spy
    return raw


def test_sft_learns_and_masks_observations(setup):
    from transformers import AutoTokenizer

    from searchgym.io import read_jsonl
    from searchgym.trainer.sft import encode_transcript

    assert setup["sft"]["final_loss"] < setup["sft"]["first_loss"]
    root = setup["root"]
    tok = AutoTokenizer.from_pretrained(root / "student")
    row = next(read_jsonl(root / "transcripts.jsonl"))
    enc = encode_transcript(tok, row, 10_000)
    labelled = tok.decode([i for i, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab != -100])
    assert labelled == "".join(t["action"] for t in row["turns"])  # the transcripts have no <think> here
    assert "<information>" not in labelled and row["turns"][0]["observation"].strip()


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _capture_masks(trainer) -> list:
    seen = []
    original = trainer._generate_and_score_completions

    def wrapped(inputs):
        out = original(inputs)
        seen.append(out)
        return out

    trainer._generate_and_score_completions = wrapped
    return seen


@pytest.mark.parametrize("estimator", ["grpo", "trac"])
def test_short_training_run(setup, estimator):
    over = {"estimator": estimator}
    if estimator != "grpo":
        over["model.teacher"] = str(setup["root"] / "student")  # a frozen copy of the start policy
    cfg = make_cfg(setup, f"run-{estimator}", **over)
    run = build_run(cfg)
    before = _params(run.trainer.model)
    seen = _capture_masks(run.trainer)
    raw = _record_rollouts(run.trainer)
    run.trainer.train()

    metrics = read_metrics(cfg.output_dir)
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    after = _params(run.trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter changed"
    # curriculum: stage 1 draws only level 1, promotion after 2 steps, stage and per-level success logged
    assert run.tracker.promotions == [2]
    assert [m["searchgym/stage"] for m in metrics if "searchgym/stage" in m] == [1.0, 1.0, 2.0]
    assert set(raw[0]["level"]) == {1} and set(raw[2]["level"]) <= {1, 2}
    assert any(k.startswith("searchgym/success_level_") for k in metrics[0])
    # masks: TRL's tool_mask is our env_mask, observation tokens are 0 and are exactly the env's observations
    out, batch = raw[0], seen[0]
    for i, mask in enumerate(out["env_mask"]):
        width = len(mask)
        assert batch["tool_mask"][i, :width].tolist() == mask
        assert 0 in mask or len(set(mask)) == 1
    tok = run.trainer.processing_class
    obs_tokens = [
        t for i, m in zip(out["completion_ids"][0], out["env_mask"][0], strict=True) if m == 0 for t in [i]
    ]
    if obs_tokens:
        assert "<information>" in tok.decode(obs_tokens)
    if estimator == "trac":
        assert any(k.startswith("trac/") for k in metrics[0])


def test_teacher_corruption_is_a_config_switch(setup):
    from searchgym.advantage.teacher import CorruptedTeacher
    from searchgym.config import ConfigError

    teacher = str(setup["root"] / "student")
    cfg = make_cfg(setup, "run-corrupt", estimator="trac", **{"model.teacher": teacher})
    cfg.model.teacher_corruption = {"shuffle": 0.2, "invert": 0.5, "seed": 3}
    teacher_scorer = build_run(cfg).trainer.teacher
    assert isinstance(teacher_scorer, CorruptedTeacher) and (
        teacher_scorer.shuffle,
        teacher_scorer.invert,
    ) == (0.2, 0.5)
    cfg.model.teacher_corruption = {"shufle": 0.2}
    with pytest.raises(ConfigError, match="unknown keys"):
        build_run(cfg)


def test_equal_groups_dropped_from_loss(setup):
    cfg = make_cfg(setup, "run-drop", equal_groups="drop", **{"grpo.max_steps": 1})
    run = build_run(cfg)
    raw = _record_rollouts(run.trainer)
    run.trainer.train()
    out = raw[0]
    for i, equal in enumerate(out["equal_group"]):
        if equal:
            assert sum(out["env_mask"][i]) == 0
        else:
            assert sum(out["env_mask"][i]) > 0


def test_existing_checkpoints_need_resume(setup):
    cfg = make_cfg(setup, "run-grpo")
    if not checkpoints(Path(cfg.output_dir)):
        pytest.skip("needs test_short_training_run[grpo]")
    from searchgym.config import ConfigError

    with pytest.raises(ConfigError, match="--resume"):
        build_run(cfg)


def _train_cmd(cfg_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "searchgym.cli", "train", "--config", str(cfg_path), *extra]


def test_resume_after_sigkill_matches_uninterrupted_run(setup, tmp_path):
    steps = 4
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "TQDM_DISABLE": "1"}
    # the uninterrupted reference
    ref = make_cfg(setup, "ref", **{"grpo.max_steps": steps})
    ref.to_yaml(tmp_path / "ref.yaml")
    subprocess.run(_train_cmd(tmp_path / "ref.yaml"), check=True, env=env, capture_output=True)
    # the same run, killed with SIGKILL once checkpoint-2 is complete, then resumed
    cfg = make_cfg(setup, "killed", **{"grpo.max_steps": steps})
    cfg.to_yaml(tmp_path / "killed.yaml")
    out = Path(cfg.output_dir)
    proc = subprocess.Popen(
        _train_cmd(tmp_path / "killed.yaml"), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and not is_complete(out / "checkpoint-2"):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert is_complete(out / "checkpoint-2")
    last = last_complete_checkpoint(out)
    assert last is not None and int(last.name.split("-")[1]) in (2, 3)
    done = subprocess.run(
        _train_cmd(tmp_path / "killed.yaml", "--resume"), env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"step {steps}" in done.stdout

    final = f"checkpoint-{steps}"
    ref_state = json.loads((Path(ref.output_dir) / final / "searchgym_curriculum.json").read_text())
    res_state = json.loads((out / final / "searchgym_curriculum.json").read_text())
    assert res_state == ref_state  # same stage, same task draws, same promotions
    ref_metrics, res_metrics = read_metrics(ref.output_dir), read_metrics(out)
    assert [m["step"] for m in res_metrics if "loss" in m] == list(range(1, steps + 1))
    ref_rewards = [m["reward"] for m in ref_metrics if "reward" in m]
    res_rewards = [m["reward"] for m in res_metrics if "reward" in m]
    assert res_rewards == pytest.approx(ref_rewards)  # same RNG: the same rollouts after the resume
