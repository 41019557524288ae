"""The TRL environment_factory adapter: tools through the real SearchEnv, and one real GRPO step with TRL's own
tool-calling loop on a tiny chat-template model taught to call `search`."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
import trl

from searchgym.env import EnvConfig, tool_loop_messages
from searchgym.integrations.trl_env import ENDED, SearchGymEnv, environment_factory, trl_dataset

QWEN25 = Path(trl.__file__).parent / "chat_templates" / "qwen2_5.jinja"
CHAT_TOKENS = (
    "<|im_start|>",
    "<|im_end|>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from searchgym.index.build import build_index
    from searchgym.pipeline import build_world
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.synth import build_tasks
    from searchgym.world.build import WorldConfig

    root = tmp_path_factory.mktemp("envf")
    w = build_world(WorldConfig(seed=0, num_entities=120), root / "world", progress=False)
    build_index(root / "world", progress=False)
    tasks = build_tasks(
        w,
        TaskConfig(max_hops=1, chain_per_hops=8, obfuscated=0, intersection=0, comparison=0),
        progress=False,
    )
    return root / "world", tasks


def test_tools_run_the_real_environment(world):
    world_dir, tasks = world
    env = environment_factory(world_dir)()
    task = tasks[0]
    assert env.reset(task=json.dumps(task.to_dict())) is None
    hits = env.search(task.question)
    assert "searchgym.local/wiki/" in hits
    page = env.access(task.evidence[0].url)
    assert task.answer in page or "Page 1" in page
    assert env.get_reward() == 0.0
    env.answer(task.answer)
    assert env.get_reward() == 1.0
    assert env.search("anything") == ENDED
    env.reset(task=task.to_dict())  # a plain dict works too, and the episode starts over
    env.answer("certainly not the answer")
    assert env.get_reward() == 0.0
    with pytest.raises(ValueError, match="task"):
        env.reset()
    row = trl_dataset(tasks[:1], {"max_turns": 3})[0]  # the prompt is env/prompts.py's, the task round-trips
    assert row["prompt"] == tool_loop_messages(task, EnvConfig(protocol="json", max_turns=3))
    assert task.question in row["prompt"][0]["content"] and json.loads(row["task"]) == task.to_dict()


def test_tool_methods_are_generated_from_the_registry():
    from transformers.utils import get_json_schema

    from searchgym.env.tools import tool_schemas
    from searchgym.integrations.trl_env import env_class

    for tools in (
        ("search", "access", "answer"),
        ("search", "access", "answer", "find"),
        ("search", "answer"),
    ):
        cls = env_class(tools)
        assert cls is env_class(tools) and cls.__name__ == "SearchGymEnv"  # TRL matches the reward by type
        env = cls.__new__(cls)
        schemas = []
        for name in tools:
            schema = get_json_schema(getattr(env, name))  # what TRL puts in the chat template
            schema["function"].pop("return")
            schemas.append(schema)
        assert schemas == tool_schemas(tools)
        public = {n for n, _ in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}
        assert public == {*tools, "reset", "get_reward"}
    assert SearchGymEnv is env_class(("search", "access", "answer"))


def test_tool_calls_are_typed_actions_checked_by_the_env(world):
    world_dir, tasks = world
    task = tasks[0]
    env = environment_factory(world_dir, {"tools": ["search", "access", "answer", "find"]})()
    env.reset(task=task.to_dict())
    assert "open an article with access before find" in env.find("born")
    assert "[Page 1 of" in env.access(url=task.evidence[0].url)  # keyword and positional calls both work
    assert "line(s) contain" in env.find("born")
    env.search(task.question, k=3)  # an argument the tool does not have: a format error, not a crash
    steps = env._env.steps
    assert [s.tool for s in steps] == ["find", "access", "find", "search"]
    assert "unexpected argument(s) ['k'] for search" in steps[-1].error
    assert env.answer("  ").startswith("Error: invalid action: empty answer")  # not "Answer recorded."
    assert env.answer(task.answer) == "Answer recorded." and env._env.summary.success
    assert env.get_reward() == 0.0  # the earlier find and the bad search call closed the format gate
    assert env.search("x") == ENDED


CALL = '<tool_call>\n{"name": "search", "arguments": {"query": "city"}}\n</tool_call><|im_end|>'


def _chat_tokenizer(world_dir: Path):
    from searchgym.env.protocol import PROTOCOL_TAGS
    from searchgym.io import read_jsonl
    from searchgym.models.tiny import train_tokenizer

    texts = [d["text"] for d in read_jsonl(world_dir / "corpus.jsonl")]
    # the call repeated, so BPE merges it into a few tokens that a tiny model memorises in seconds
    texts += [QWEN25.read_text()] + [CALL] * 200
    tok = train_tokenizer(texts, vocab_size=700, special_tokens=PROTOCOL_TAGS + CHAT_TOKENS)
    tok.chat_template = QWEN25.read_text()
    tok.eos_token = "<|im_end|>"
    return tok


@pytest.mark.slow
def test_grpo_step_with_trl_tool_loop(world, tmp_path):
    from trl import GRPOConfig, GRPOTrainer
    from trl.chat_template_utils import get_training_chat_template, is_chat_template_prefix_preserving

    from searchgym.models.tiny import TinyModelConfig, tiny_llama

    torch.set_num_threads(1)
    world_dir, tasks = world
    factory = environment_factory(world_dir)
    tok = _chat_tokenizer(world_dir)
    model = tiny_llama(
        tok, TinyModelConfig(hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1, intermediate_size=128)
    )
    data = trl_dataset(tasks[:2])
    # teach the model one move: answer every prompt with a search tool call (so TRL's loop has a call to run)
    probe = factory()
    # the tools exactly as TRL lists an environment's methods (inspect.getmembers order, reset/get_reward excluded)
    tools = [
        getattr(probe, name)
        for name, _ in inspect.getmembers(type(probe), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]
    assert [t.__name__ for t in tools] == ["access", "answer", "search"]
    call = CALL
    templates = [tok.chat_template]  # TRL renders prompts with its prefix-preserving variant when it has one
    if not is_chat_template_prefix_preserving(tok):
        templates.append(get_training_chat_template(tok))
    seqs = []
    for template in templates:
        for row in data:
            prompt = tok.apply_chat_template(
                row["prompt"], tools=tools, add_generation_prompt=True, tokenize=False, chat_template=template
            )
            n = len(tok(prompt, add_special_tokens=False)["input_ids"])
            ids = tok(prompt + call, add_special_tokens=False)["input_ids"]
            seqs.append((ids, [-100] * n + ids[n:]))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(60):
        for ids, labels in seqs:
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([labels])).loss
            loss.backward()
            opt.step()
            opt.zero_grad()

    seen: list[SearchGymEnv] = []

    def tracked():
        env = factory()
        seen.append(env)
        return env

    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=1,
        per_device_train_batch_size=2,
        num_generations=2,
        max_completion_length=64,
        temperature=0.2,
        learning_rate=1e-3,
        report_to="none",
        use_cpu=True,
        bf16=False,
        logging_steps=1,
        save_strategy="no",
        max_tool_calling_iterations=1,
        gradient_checkpointing=False,
    )
    trainer = GRPOTrainer(
        model=model, args=args, train_dataset=data, processing_class=tok, environment_factory=tracked
    )
    trainer.train()
    logs = trainer.state.log_history[0]
    assert logs["tools/call_frequency"] > 0
    searched = [s for env in seen for s in env._env.steps if s.tool == "search"]
    assert searched and searched[0].args == {"query": "city"}
    assert "rewards/SearchGymEnv/mean" in logs  # get_reward is TRL's reward source
