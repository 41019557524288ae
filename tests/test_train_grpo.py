"""Short real training runs on TRL: GRPO and TRAC-GRPO with SearchGym's rollout_func, the curriculum as TRL's data
stream, masks, the rollout log, and resume after SIGKILL. The tiny world and its SFT-warmed student come from the
`trained_world` fixture (conftest.py)."""

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
from searchgym.trainer.grpo import build_run, is_complete, last_complete_checkpoint, read_metrics

pytestmark = pytest.mark.slow

ROLLOUT_KEYS = {
    "step", "task_id", "group", "sample", "question", "gold", "level", "type", "reward", "success", "advantage",
    "tokens", "token_ids", "env_mask", "steps", "episode", "trac",
}  # fmt: skip
TRAC_KEYS = {"r_hat", "omega", "w_c", "w_p", "w_d", "group_success"}


def make_cfg(world, out: str, **over) -> TrainConfig:
    base = {
        "data": {"world": str(world["world"]), "tasks": str(world["tasks"])},
        "model": {"path": str(world["student"])},
        "grpo": {
            "max_steps": 3,
            "num_generations": 4,
            "per_device_train_batch_size": 8,
            "learning_rate": 1e-3,
            "save_steps": 1,
            "max_completion_length": 1000,
        },
        "env": world["env"],
        "rollout": {"max_new_tokens": 64, "max_total_tokens": 1000},
        "curriculum": {
            "stages": [{"name": "s1", "levels": [1]}, {"name": "s2", "levels": [2]}],
            "promote_after_steps": 1,
            "min_steps": 100,
        },
        "equal_groups": "count",
        "output_dir": str(world["root"] / out),
    }
    return TrainConfig.from_dict(base).override([f"{k}={v}" for k, v in over.items()])


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


def _record_batches(trainer) -> list:
    """Every training batch's TRACStep (the trainer's documented on_batch hook), besides the rollout log."""
    seen: list = []
    log = trainer.on_batch

    def hook(rec):
        seen.append(rec)
        log(rec)

    trainer.on_batch = hook
    return seen


def _zero_runs(mask: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, m in enumerate([*mask, 1]):
        if m == 0 and start is None:
            start = i
        elif m == 1 and start is not None:
            runs.append((start, i))
            start = None
    return runs


def test_sft_learns_and_masks_observations(trained_world):
    from transformers import AutoTokenizer

    from searchgym.io import read_jsonl
    from searchgym.trainer.sft import encode_transcript

    assert trained_world["sft"]["final_loss"] < trained_world["sft"]["first_loss"]
    tok = AutoTokenizer.from_pretrained(trained_world["student"])
    row = next(read_jsonl(trained_world["root"] / "transcripts.jsonl"))
    enc = encode_transcript(tok, row, 10_000)
    labelled = tok.decode([i for i, lab in zip(enc["input_ids"], enc["labels"], strict=True) if lab != -100])
    assert labelled == "".join(t["action"] for t in row["turns"])  # the transcripts have no <think> here
    assert "<information>" not in labelled and row["turns"][0]["observation"].strip()


def _params(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("estimator", ["grpo", "trac"])
def test_short_training_run(trained_world, estimator):
    from searchgym.env.prompts import render_prompt
    from searchgym.tasks.store import load_tasks

    over = {"estimator": estimator}
    if estimator != "grpo":
        over |= {"teacher.kind": "hf", "teacher.path": str(trained_world["student"])}  # frozen start policy
    cfg = make_cfg(trained_world, f"run-{estimator}", **over)
    run = build_run(cfg)
    before = _params(run.trainer.model)
    raw = _record_rollouts(run.trainer)
    batches = _record_batches(run.trainer)
    run.trainer.train()

    metrics = read_metrics(cfg.output_dir)
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    after = _params(run.trainer.model)
    assert any(not torch.equal(before[k], after[k]) for k in before), "no parameter changed"

    # TRL's data are real task rows, in curriculum order: draw j is step j + 1's generation batch
    tasks = {t.id: t for t in load_tasks(trained_world["tasks"])}
    for step, rec in enumerate(batches):
        for i, row in enumerate(rec.inputs):
            task = tasks[row["task_id"]]
            assert row["prompt"] == render_prompt(task, cfg.env) and row["question"] == task.question
            assert row["gold"] == task.answers and row["level"] == task.level and row["draw"] == step
            assert row["task_id"] == rec.inputs[i - i % 4]["task_id"]  # one task per group of 4
    # curriculum: promotion after step 1; accelerate fetches one batch ahead, so step 2's batch was drawn before
    # the promotion and step 3's after it
    assert run.tracker.promotions == [1]
    assert [m["searchgym/stage"] for m in metrics if "searchgym/stage" in m] == [1.0, 1.0, 2.0]
    assert {r["level"] for r in batches[0].inputs} == {1} and {r["level"] for r in batches[2].inputs} <= {
        1,
        2,
    }
    assert any(k.startswith("searchgym/success_level_") for k in metrics[0])

    # masks: TRL's tool_mask is our env_mask, and its 0-runs are exactly the env's observations, one per turn but
    # the last
    tok = run.trainer.processing_class
    multi_turn = 0
    for out, rec in zip(raw, batches, strict=True):
        for i, mask in enumerate(out["env_mask"]):
            assert rec.env_mask[i] == mask
            runs = _zero_runs(mask)
            assert len(runs) == out["env_info"][i]["turns"] - 1
            for a, b in runs:
                text = tok.decode(out["completion_ids"][i][a:b])
                assert text.startswith("\n<information>") and text.endswith("</information>\n"), text
            multi_turn += len(runs) > 0
    assert multi_turn > 0  # some rollouts really searched before answering

    # the rollout log: 4 sampled rollouts per logging step, the viewer's keys
    rows = [json.loads(x) for x in (Path(cfg.output_dir) / "rollouts.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1] * 4 + [2] * 4 + [3] * 4
    for r in rows:
        assert set(r) == ROLLOUT_KEYS
        assert len(r["tokens"]) == len(r["token_ids"]) == len(r["env_mask"])
        assert "".join(r["tokens"]) == tok.decode(r["token_ids"], skip_special_tokens=False)
        assert r["episode"]["success"] == r["success"] and r["steps"] and "tool" in r["steps"][0]
        assert r["gold"] == tasks[r["task_id"]].answers and 0 <= r["sample"] < 4
        if estimator == "grpo":
            assert r["trac"] is None
        else:
            assert set(r["trac"]) == TRAC_KEYS and len(r["trac"]["r_hat"]) == len(r["token_ids"])
            assert len(r["trac"]["group_success"]) == 4 and r["success"] in r["trac"]["group_success"]
    if estimator == "trac":
        assert any(k.startswith("trac/") for k in metrics[0])


def test_teacher_corruption_is_a_config_switch(trained_world):
    from searchgym.advantage.teacher import CorruptedTeacher
    from searchgym.config import ConfigError

    teacher = {"teacher.kind": "hf", "teacher.path": str(trained_world["student"])}
    corrupt = {
        "teacher.corruption.shuffle": 0.2,
        "teacher.corruption.invert": 0.5,
        "teacher.corruption.seed": 3,
    }
    cfg = make_cfg(trained_world, "run-corrupt", estimator="trac", **teacher, **corrupt)
    scorer = build_run(cfg).trainer.teacher
    assert isinstance(scorer, CorruptedTeacher) and (scorer.shuffle, scorer.invert) == (0.2, 0.5)
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.override(["teacher.corruption.shufle=0.2"])
    with pytest.raises(ConfigError, match="sum <= 1"):
        cfg.override(["teacher.corruption.shuffle=0.8"])


def test_equal_groups_dropped_from_loss(trained_world):
    cfg = make_cfg(trained_world, "run-drop", equal_groups="drop", **{"grpo.max_steps": 1})
    run = build_run(cfg)
    raw = _record_rollouts(run.trainer)
    run.trainer.train()
    out = raw[0]
    for i, equal in enumerate(out["equal_group"]):
        assert (sum(out["env_mask"][i]) == 0) == equal
    assert True in out["equal_group"] or sum(map(sum, out["env_mask"])) > 0


def test_existing_checkpoints_need_resume(trained_world):
    from searchgym.config import ConfigError

    cfg = make_cfg(trained_world, "run-existing")
    (Path(cfg.output_dir) / "checkpoint-1").mkdir(parents=True)
    with pytest.raises(ConfigError, match="--resume"):
        build_run(cfg)


def _train_cmd(cfg_path: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "searchgym.cli", "train", "--config", str(cfg_path), *extra]


def test_resume_after_sigkill_matches_uninterrupted_run(trained_world, tmp_path):
    steps = 4
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1", "TQDM_DISABLE": "1"}
    # promotion at step 2: checkpoint-2 then holds a draw made before it (accelerate's look-ahead), which the
    # resumed run must make again in the old stage
    over = {"grpo.max_steps": steps, "curriculum.promote_after_steps": 2}
    ref = make_cfg(trained_world, "ref", **over)
    ref.to_yaml(tmp_path / "ref.yaml")
    subprocess.run(_train_cmd(tmp_path / "ref.yaml"), check=True, env=env, capture_output=True)
    # the same run, killed with SIGKILL once checkpoint-2 is complete, then resumed
    cfg = make_cfg(trained_world, "killed", **over)
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
    assert ref_state["curriculum"]["draw_stages"][:4] == [0, 0, 0, 1]  # the look-ahead case happened
    ref_metrics, res_metrics = read_metrics(ref.output_dir), read_metrics(out)
    assert [m["step"] for m in res_metrics if "loss" in m] == list(range(1, steps + 1))
    ref_rewards = [m["reward"] for m in ref_metrics if "reward" in m]
    res_rewards = [m["reward"] for m in res_metrics if "reward" in m]
    assert res_rewards == ref_rewards  # same RNG: the same rollouts after the resume
    # the rollout log holds every step once, identical to the uninterrupted run's
    assert (out / "rollouts.jsonl").read_text() == (Path(ref.output_dir) / "rollouts.jsonl").read_text()


def test_server_mode_rollout_generates_through_the_server(trained_world):
    """`grpo.vllm_mode: server`: the rollout generates through the OpenAI-compatible server TRL syncs the policy
    into. TRL's NCCL weight sync needs CUDA, so here the server serves the student's start weights, the same ones
    the policy has at step 0, and the behaviour log-probs it returns must equal the policy's own."""
    import threading

    import uvicorn
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from test_rollout_openai import free_port, tiny_server

    tok = AutoTokenizer.from_pretrained(trained_world["student"])
    served = AutoModelForCausalLM.from_pretrained(trained_world["student"]).eval()
    app = tiny_server(served, tok)
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        cfg = make_cfg(trained_world, "run-server", **{"grpo.max_steps": 1})
        run = build_run(cfg, progress=False)
        func = run.trainer.rollout_func
        func.generator, func.server_url = "openai", f"http://127.0.0.1:{port}"  # what vllm_mode=server sets
        raw = _record_rollouts(run.trainer)
        policy = run.trainer.model
        start = _params(policy)
        run.trainer.train()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    out = raw[0]
    assert app.state.counter["requests"] >= len(out["completion_ids"])  # every rollout's turns were served
    assert func._server.model == "tiny"  # read from GET /v1/models
    with torch.no_grad():
        for name, p in policy.named_parameters():
            p.copy_(start[name])  # the policy as it was when the rollouts were generated
        policy.eval()
        for prompt, completion, mask, lps in zip(
            out["prompt_ids"], out["completion_ids"], out["env_mask"], out["logprobs"], strict=True
        ):
            ids = torch.tensor([prompt + completion])
            logits = policy(ids).logits[0, len(prompt) - 1 : -1].float()
            own = torch.log_softmax(logits, -1).gather(-1, torch.tensor(completion)[:, None])[:, 0]
            model_tokens = [i for i, m in enumerate(mask) if m]
            if not model_tokens:  # a dropped equal group: masked out, nothing to compare
                continue
            diff = (own[model_tokens] - torch.tensor(lps)[model_tokens]).abs().max().item()
            assert diff < 1e-4, diff
