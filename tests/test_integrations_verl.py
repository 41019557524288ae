"""SearchGym inside verl 0.9.1, with verl installed and its own code doing the loading, looping and scoring: the
plugin registers in a fresh process (and a Ray worker), RLHFDataset loads our parquet, the SearchGym agent loop runs
real episodes through verl's agent-loop worker with a real tiny model behind verl's generation-server interface
(over the HTTP search server and the in-process index, with a teacher), verl's tool agent runs our generated tools,
and verl's reward manager calls our reward file. The estimators are in test_integrations_verl_advantage.py."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

verl = pytest.importorskip(
    "verl", reason='verl is not installed: pip install "searchgym[verl]" + --no-deps verl'
)

from omegaconf import OmegaConf  # noqa: E402
from verl.experimental.agent_loop.agent_loop import (  # noqa: E402
    AgentLoopOutput,
    AgentLoopWorker,
    DictConfigWrap,
    ToolListWrap,
    _agent_loop_registry,
)
from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

import searchgym.integrations.rewards as rewards_module  # noqa: E402
import searchgym.integrations.verl  # noqa: E402,F401  (registers the agent loop)
from searchgym.env import TOOLS, EnvConfig, SearchEnv  # noqa: E402
from searchgym.index.server import create_app  # noqa: E402
from searchgym.integrations.export import ExportOptions, export_tasks, read_back  # noqa: E402
from searchgym.integrations.verl.tools import tool_config, write_tool_config  # noqa: E402
from searchgym.models.tiny import train_tokenizer  # noqa: E402
from searchgym.rollout.episodes import RolloutConfig, rollout  # noqa: E402
from searchgym.rollout.generate import SamplingParams  # noqa: E402
from searchgym.rollout.hf import HFGenerator  # noqa: E402
from test_rollout_common import DOCS, TASKS, engine, tiny_agent  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "verl"
QWEN25 = Path(__import__("trl").__file__).parent / "chat_templates" / "qwen2_5.jinja"
GREEDY = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}
ENV = {"max_turns": 4}  # the tiny agent was trained on 4-turn episodes


def trainer_config(prompt_length: int = 512, response_length: int = 256, **multi_turn) -> OmegaConf:
    mt = {
        "max_user_turns": 4,
        "max_assistant_turns": 4,
        "max_parallel_calls": 1,
        "max_tool_response_length": 4096,
        "tool_response_truncate_side": "middle",
        "format": "hermes",
        **multi_turn,
    }
    rollout_cfg = {
        "prompt_length": prompt_length,
        "response_length": response_length,
        "full_determinism": False,
        "multi_turn": mt,
    }
    return OmegaConf.create(
        {
            "actor_rollout_ref": {"rollout": rollout_cfg},
            "data": {"apply_chat_template_kwargs": {}, "mm_processor_kwargs": {}},
        }
    )


class ModelServer:
    """verl's generation-server interface (`LLMServerClient.generate`: token ids in, TokenOutput out) over a real
    model, honouring what vLLM does with the sampling params our agent loop sends (max_tokens, stop strings kept in
    the output). `script` replaces the model with fixed turns (verl's tool agent test)."""

    def __init__(self, model=None, tokenizer=None, script: list[str] | None = None):
        self.gen = HFGenerator(model, tokenizer) if model is not None else None
        self.tokenizer, self.script, self.calls = tokenizer, list(script or []), []

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kwargs) -> TokenOutput:
        self.calls.append({"request_id": request_id, "sampling_params": dict(sampling_params)})
        if self.script:
            ids = self.tokenizer(self.script.pop(0), add_special_tokens=False)["input_ids"]
            return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), stop_reason="completed")
        sp = sampling_params
        params = SamplingParams(
            sp.get("max_tokens", 64),
            sp.get("temperature", 1.0),
            sp.get("top_p", 1.0),
            tuple(sp.get("stop", ())),
        )
        g = self.gen.generate([prompt_ids], params)[0]
        return TokenOutput(token_ids=g.token_ids, log_probs=g.logprobs, stop_reason="completed")


@pytest.fixture(scope="module")
def endpoint():
    """`searchgym serve`'s app over the tiny agent's five documents, on 127.0.0.1."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(engine()), host="127.0.0.1", port=port, log_level="error")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the search server did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(5)


def worker(tokenizer, cfg) -> AgentLoopWorker:
    """verl's AgentLoopWorker without Ray: the attributes `_run_agent_loop` / `_postprocess` read."""
    w = object.__new__(AgentLoopWorker)
    w.config, w.rollout_config = cfg, cfg.actor_rollout_ref.rollout
    w.tokenizer, w.processor, w.hf_model_type, w.dataset_cls = tokenizer, None, None, RLHFDataset
    w.reward_loop_worker_handles, w.distillation_enabled, w.mm_processor_kwargs = None, False, {}
    w.tools = {}
    return w


def agent_yaml_entry(**overrides) -> dict:
    """The shipped agent-loop YAML's searchgym entry, registered as AgentLoopWorker does, with overrides."""
    entries = OmegaConf.load(EXAMPLES / "agent_loop.yaml")
    entry = next(e for e in entries if e.name == "searchgym")
    for key in ("endpoint", "world", "teacher", "env"):  # the recipe's cluster settings
        entry.pop(key, None)
    return OmegaConf.merge(entry, overrides)


def run_rows(w: AgentLoopWorker, server, rows, sampling=GREEDY, validate=False):
    async def go():
        outs = []
        for i, row in enumerate(rows):
            kwargs = {k: v for k, v in row.items() if k != "agent_name"}
            outs.append(
                await w._run_agent_loop(
                    dict(sampling),
                    {"step": 0, "sample_index": i, "rollout_n": 0, "validate": validate},
                    agent_name=row["agent_name"],
                    trace=False,
                    **kwargs,
                )
            )
        return outs

    w.llm_client = server
    return asyncio.get_event_loop().run_until_complete(go())


def dataset_rows(path: Path, tokenizer, **config) -> list[dict]:
    cfg = {"prompt_key": "prompt", "max_prompt_length": 1024, "return_raw_chat": True, "truncation": "error"}
    cfg |= {"filter_overlong_prompts": True, "filter_overlong_prompts_workers": 1, **config}
    ds = RLHFDataset(data_files=str(path), tokenizer=tokenizer, config=OmegaConf.create(cfg))
    return [ds[i] for i in range(len(ds))]


# ------------------------------------------------------------------------------------------------- plugin


PLUGIN_CHECK = """
import verl
from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY
from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
from verl.trainer.ppo.v1 import get_trainer_cls
print(sorted(k for k in ADV_ESTIMATOR_REGISTRY if k.startswith("searchgym_")), "searchgym" in _agent_loop_registry,
      get_trainer_cls("searchgym_sync").__name__)
"""


def test_plugin_registers_on_plain_import_verl(tmp_path):
    from importlib.metadata import entry_points

    from searchgym.advantage.estimators import ESTIMATORS

    assert [e.value for e in entry_points(group="verl.plugins") if e.name == "searchgym"] == [
        "searchgym.integrations.verl"
    ], "the installed searchgym lacks its verl.plugins entry point: reinstall (pip install -e .)"
    r = subprocess.run([sys.executable, "-c", PLUGIN_CHECK], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    expected = sorted(f"searchgym_{name}" for name in ESTIMATORS)
    assert r.stdout.strip().splitlines()[-1] == f"{expected} True SearchGymTrainer"


@pytest.mark.slow
def test_plugin_registers_inside_a_ray_worker():
    ray = pytest.importorskip("ray", reason="ray is not installed")

    @ray.remote(num_cpus=1)
    def registries():
        import verl  # noqa: F401  (the worker process imports verl, which loads the plugins)
        from verl.experimental.agent_loop.agent_loop import _agent_loop_registry
        from verl.trainer.ppo.core_algos import ADV_ESTIMATOR_REGISTRY

        return "searchgym" in _agent_loop_registry, "searchgym_trac" in ADV_ESTIMATOR_REGISTRY

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        assert ray.get(registries.remote(), timeout=300) == (True, True)
    finally:
        ray.shutdown()


# ---------------------------------------------------------------------------------------------- datasets


def test_rlhf_dataset_loads_our_exports(tmp_path):
    _, tok = tiny_agent()
    for opts in (ExportOptions(world="/w"), ExportOptions("json", agent="tool_agent", world="/w")):
        path = export_tasks(TASKS, "verl", tmp_path / f"{opts.agent}.parquet", opts)
        rows = dataset_rows(path, tok)
        assert len(rows) == len(TASKS)
        for i, (row, task) in enumerate(zip(rows, TASKS, strict=True)):
            assert row["agent_name"] == opts.agent and row["index"] == i and row["data_source"] == "searchgym"
            assert list(row["raw_prompt"]) == list(read_back("verl", path)[i]["prompt"])
            kwargs = row["tools_kwargs"]  # the dataset's .get default does not apply to a None struct
            assert sorted(kwargs) == ["access", "answer", "search"] and all(
                v is not None for v in kwargs.values()
            )
            assert json.loads(kwargs["search"]["create_kwargs"]["task"])["id"] == task.id
            assert list(row["reward_model"]["ground_truth"]["target"]) == task.answers
        batch = collate_fn(rows)
        assert list(batch["agent_name"]) == [opts.agent] * len(TASKS)
    path = export_tasks(TASKS, "searchr1", tmp_path / "sr1.parquet")
    assert [r["data_source"] for r in dataset_rows(path, tok)] == ["nq"] * len(TASKS)
    assert dataset_rows(path, tok, max_prompt_length=16) == []  # verl drops overlong prompts silently


# ------------------------------------------------------------------------------------------------ agent loop


def test_agent_loop_runs_episodes_through_verls_worker(endpoint, tmp_path):
    """The parquet row → RLHFDataset → verl's _run_agent_loop (our loop built from the shipped YAML by hydra) →
    _agent_loop_postprocess / _postprocess: the same tokens as our own rollout, mask 0 exactly on observations,
    the env reward at the last response token."""
    model, tok = tiny_agent()
    path = export_tasks(TASKS, "verl", tmp_path / "train.parquet", ExportOptions(env=ENV))
    rows = dataset_rows(path, tok)
    cfg = trainer_config()
    _agent_loop_registry["searchgym"] = agent_yaml_entry(endpoint=endpoint, max_new_tokens=40)
    w = worker(tok, cfg)
    server = ModelServer(model, tok)
    internal = run_rows(w, server, rows)
    ours = rollout(
        TASKS,
        lambda: SearchEnv(engine(), EnvConfig.preset("tag", **ENV)),
        HFGenerator(model, tok),
        tok,
        RolloutConfig(max_new_tokens=40, max_total_tokens=256, temperature=0),
    )
    assert all(c["sampling_params"]["stop"] == ["</search>", "</access>", "</answer>"] for c in server.calls)
    assert len({c["request_id"] for c in server.calls}) == len(TASKS)  # one request id per trajectory
    batch = w._postprocess(internal, input_non_tensor_batch=None)
    assert tuple(batch.batch["responses"].shape) == (len(TASKS), 256)
    for i, tr in enumerate(ours):
        n = len(tr.completion_ids)
        assert batch.batch["responses"][i, :n].tolist() == tr.completion_ids
        assert batch.batch["response_mask"][i].tolist() == tr.env_mask + [0] * (256 - n)
        prompt = batch.batch["prompts"][i]
        assert prompt[-len(tr.prompt_ids) :].tolist() == tr.prompt_ids
        assert torch.allclose(batch.batch["rollout_log_probs"][i, :n], torch.tensor(tr.logprobs), atol=1e-5)
        assert batch.batch["rm_scores"][i].nonzero().flatten().tolist() == [n - 1]
        assert batch.batch["rm_scores"][i, n - 1].item() == tr.reward == 1.0
        assert batch.non_tensor_batch["success"][i] == 1.0 and batch.non_tensor_batch["searches"][i] == 1.0
        assert batch.non_tensor_batch["task_id"][i] == TASKS[i].id
    assert list(batch.non_tensor_batch["__num_turns__"]) == [4, 4, 4]
    assert all(m["generate_sequences"] > 0 for m in batch.meta_info["metrics"])


def test_agent_loop_in_process_index_with_teacher_and_budget(tmp_path):
    """In-process engine (`world:`), a teacher from the YAML (the student itself: its log-probs of the sampled
    tokens are the behaviour log-probs), and a response budget that ends episodes as the env's token_budget."""
    from searchgym.index.build import build_index
    from searchgym.pipeline import build_world
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.synth import build_tasks
    from searchgym.world.build import WorldConfig

    world = build_world(WorldConfig(seed=3, num_entities=120), tmp_path / "w", progress=False)
    build_index(world.path)
    tasks = build_tasks(
        world, TaskConfig(chain_per_hops=2, obfuscated=2, intersection=2, comparison=2), progress=False
    )[:2]
    model, tok = tiny_agent()
    model.save_pretrained(tmp_path / "teacher")
    tok.save_pretrained(tmp_path / "teacher")
    path = export_tasks(tasks, "verl", tmp_path / "t.parquet", ExportOptions(world=str(world.path), env=ENV))
    rows = dataset_rows(path, tok, max_prompt_length=512)
    teacher = {"kind": "hf", "path": str(tmp_path / "teacher")}
    _agent_loop_registry["searchgym"] = agent_yaml_entry(max_new_tokens=24, teacher=teacher)
    w = worker(tok, trainer_config(response_length=64))
    sampling = {**GREEDY, "temperature": 1.0}
    internal = run_rows(w, ModelServer(model, tok), rows, sampling)
    batch = w._postprocess(internal, input_non_tensor_batch=None)
    nt = batch.non_tensor_batch
    for i in range(len(tasks)):
        mask = batch.batch["response_mask"][i].bool()
        n = int(batch.batch["attention_mask"][i, 512:].sum())
        assert n <= 64 and nt["done_reason"][i] in ("token_budget", "invalid", "max_turns", "answer")
        teacher_logp = torch.tensor(nt["teacher_logp"][i])
        assert teacher_logp.shape == (n,) and (teacher_logp[~mask[:n]] == 0).all()
        behaviour = batch.batch["rollout_log_probs"][i, :n]
        assert torch.allclose(teacher_logp[mask[:n]], behaviour[mask[:n]], atol=1e-4)
        assert len(nt["teacher_entropy"][i]) == n and min(nt["teacher_entropy"][i]) >= 0


def test_agent_loop_output_validates_and_refuses_what_verl_would_drop():
    model, tok = tiny_agent()
    tr = rollout(
        TASKS[:1],
        lambda: SearchEnv(engine(), EnvConfig(**ENV)),
        HFGenerator(model, tok),
        tok,
        RolloutConfig(max_new_tokens=40, temperature=0),
    )[0]
    from searchgym.rollout.adapters import to_verl

    fields = to_verl([tr])[0]
    out = AgentLoopOutput(**fields)
    assert set(fields) <= set(AgentLoopOutput.model_fields)  # nothing verl would silently ignore
    d = out.as_dict()
    assert d["rollout_log_probs"].tolist() == pytest.approx(tr.logprobs)
    assert d["rm_scores"][-1].item() == tr.reward and d["response_mask"].tolist() == tr.env_mask
    assert out.metrics.generate_sequences == tr.model_seconds


# ------------------------------------------------------------------------------------------ tool agent


def chat_tokenizer():
    texts = [d.contents for d in DOCS] * 10 + ['{"name": "search", "arguments": {"query": "Zorvan"}}'] * 20
    tags = [
        "<|im_start|>",
        "<|im_end|>",
        "<tool_call>",
        "</tool_call>",
        "<tool_response>",
        "</tool_response>",
    ]
    tok = train_tokenizer(texts, vocab_size=500, special_tokens=tags)
    tok.chat_template = QWEN25.read_text()
    return tok


def test_tool_agent_runs_our_tools_and_reward_file(endpoint, tmp_path):
    """verl's own ToolAgentLoop with the tool config generated from the registry: scripted hermes calls search and
    answer run in the env (tool reward = the env's reward), and verl's naive reward manager scores the trajectory
    with our reward file (the JSON answer form)."""
    from verl.experimental.agent_loop.tool_agent_loop import ToolAgentLoop
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
    from verl.tools.tool_registry import load_all_tools
    from verl.trainer.ppo.reward import get_custom_reward_fn

    tok = chat_tokenizer()
    task = TASKS[0]
    cfg_path = write_tool_config(tmp_path / "tools.yaml", endpoint=endpoint)
    tools = load_all_tools(tool_config_path=str(cfg_path), function_tool_path=None)
    assert [t.name for t in tools] == ["search", "access", "answer"]
    row = read_back(
        "verl",
        export_tasks([task], "verl", tmp_path / "r.parquet", ExportOptions("json", agent="tool_agent")),
    )[0]
    call = lambda name, **a: "<tool_call>" + json.dumps({"name": name, "arguments": a}) + "</tool_call>"  # noqa: E731
    script = [call("search", query="Zorvan founder"), call("answer", answer=task.answer), "Done."]
    server = ModelServer(tokenizer=tok, script=script)
    cfg = trainer_config()
    loop = ToolAgentLoop(
        trainer_config=DictConfigWrap(cfg),
        server_manager=server,
        tokenizer=tok,
        processor=None,
        dataset_cls=RLHFDataset,
        data_config=DictConfigWrap(cfg.data),
        tools=ToolListWrap(tools),
    )
    kwargs = {k: v for k, v in row.items() if k != "agent_name"}
    kwargs |= {"raw_prompt": row["prompt"], "tools_kwargs": row["extra_info"]["tools_kwargs"]}
    out = loop.loop.run_until_complete(loop.run(dict(GREEDY), **kwargs))
    text = tok.decode(out.response_ids)
    assert (
        "<tool_response>" in text and "[Doc 1](corpus://city/1) Zorvan" in text and "Answer recorded." in text
    )
    assert out.extra_fields["tool_rewards"] == [0.0, 1.0]
    # verl's reward manager: our reward file loaded by path, reward_kwargs merged in
    reward_cfg = {"path": rewards_module.__file__, "name": "compute_score", "reward_kwargs": {"metric": "em"}}
    fn = get_custom_reward_fn(OmegaConf.create({"reward": {"custom_reward_function": reward_cfg}}))
    w = worker(tok, cfg)
    internal = asyncio.get_event_loop().run_until_complete(w._agent_loop_postprocess(out, False, **kwargs))
    batch = w._postprocess([internal], input_non_tensor_batch=None)
    from verl import DataProto

    data = DataProto.from_dict(
        tensors={k: batch.batch[k] for k in ("prompts", "responses", "attention_mask")},
        non_tensors={
            "data_source": np.array([row["data_source"]], dtype=object),
            "reward_model": np.array([row["reward_model"]], dtype=object),
            "extra_info": np.array([row["extra_info"]], dtype=object),
            "__num_turns__": batch.non_tensor_batch["__num_turns__"],
            "tool_extra_fields": np.array([{"tool_rewards": out.extra_fields["tool_rewards"]}], dtype=object),
        },
    )
    manager = get_reward_manager_cls("naive")(OmegaConf.create({}), tok, fn)
    scored = manager.loop.run_until_complete(manager.run_single(data))
    assert scored["reward_score"] == 1.0 and scored["reward_extra_info"]["answered"] == 1.0
    wrong = dict(GREEDY)
    server.script = [call("answer", answer="Ostra"), "Done."]
    out2 = loop.loop.run_until_complete(loop.run(wrong, **kwargs))
    assert (
        rewards_module.compute_score(
            "searchgym", tok.decode(out2.response_ids), row["reward_model"]["ground_truth"]
        )["em"]
        == 0.0
    )


def test_shipped_tool_config_is_the_generated_one():
    shipped = yaml.safe_load((EXAMPLES / "tool_config.yaml").read_text())
    assert shipped == tool_config(("search", "access", "answer"), endpoint="http://127.0.0.1:8000")
    assert [t["tool_schema"] for t in shipped["tools"]] == [
        TOOLS[n].schema() for n in ("search", "access", "answer")
    ]
