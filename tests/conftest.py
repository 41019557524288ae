"""Shared fixtures, one section per fixture family. Add new families as new sections.

tiny models   `tiny_corpus`, `tiny_tok` (a byte-level BPE tokenizer with the protocol tags, trained locally),
              `tiny_llama_factory` (student / teacher Llamas of a few thousand parameters from a config)
servers       `http_server(handler_class, **attributes)`: a real ThreadingHTTPServer on 127.0.0.1, shut down after
a tiny world  `trained_world`: a 200-entity world with its index, a 4-task training set (levels 1 and 2) and a
              student SFT-overfit on those tasks' oracle transcripts (sampled rollouts then succeed sometimes)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

# ------------------------------------------------------------------------------------------------ tiny models

TINY_CORPUS = [
    "Ada Lovelace was born in London in 1815 and worked with Charles Babbage.",
    "The city of Vell is the capital of Norland; its mayor is Ora Quint.",
    "<search> capital of Norland </search> <information> Vell </information> <answer> Vell </answer>",
    "the capital of norland is vell",
    "ada was born in london",
    "search access answer think",
] * 20
SMALL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}


@pytest.fixture(scope="session")
def tiny_corpus() -> list[str]:
    return list(TINY_CORPUS)


@pytest.fixture(scope="session")
def tiny_tok():
    """A 320-token tokenizer trained on `tiny_corpus`; the same corpus always gives the same vocabulary."""
    from searchgym.env.protocol import PROTOCOL_TAGS
    from searchgym.models.tiny import train_tokenizer

    return train_tokenizer(TINY_CORPUS, vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS)


@pytest.fixture(scope="session")
def tiny_llama_factory() -> Callable:
    """`make(tok, **shape)`: a 1-layer, 32-wide Llama (random weights, seed 0) unless `shape` says otherwise."""
    from searchgym.models.tiny import TinyModelConfig, tiny_llama

    def make(tok, **shape):
        return tiny_llama(tok, TinyModelConfig(**(SMALL | shape)))

    return make


# ---------------------------------------------------------------------------------------------------- servers


@pytest.fixture
def http_server() -> Iterator[Callable]:
    """`start(handler_class, **attributes)` -> a running ThreadingHTTPServer on 127.0.0.1 (port in
    `.server_port`); the attributes are set on the server object for the handler to read."""
    from http.server import ThreadingHTTPServer

    started = []

    def start(handler, **attributes):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        for k, v in attributes.items():
            setattr(srv, k, v)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.shutdown()
        srv.server_close()


# ------------------------------------------------------------------------------------------------ a tiny world

# The demo's short prompt without <think>: a tiny model learns the act-observe loop fast on short sequences.
WORLD_PROMPT = (
    "Answer by searching. One action per turn: <search> query </search>, <access> url </access> or "
    "<answer> answer </answer>.\nQuestion: {question}\n"
)
WORLD_ENV = {
    "max_turns": 5,
    "topk": 2,
    "doc_chars": 80,
    "page_chars": 800,
    "require_think": False,
    "prompt": WORLD_PROMPT,
}


@pytest.fixture(scope="session")
def trained_world(tmp_path_factory) -> dict:
    """{"root", "world", "tasks", "student", "env", "sft"}: world + index, task set "t" (2 level-1 and 2 level-2
    train tasks the oracle solves), and `student/`, a tiny model SFT-overfit on their transcripts."""
    import torch

    from searchgym.agents.oracle import Oracle, save_transcripts
    from searchgym.env.config import EnvConfig
    from searchgym.index.build import build_index, load_engine
    from searchgym.pipeline import build_world
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.store import save_tasks
    from searchgym.tasks.synth import build_tasks
    from searchgym.trainer.sft import SFTRunConfig, run_sft
    from searchgym.world.build import WorldConfig

    torch.set_num_threads(1)  # tiny matmuls: threads only contend on a shared 2-core machine
    root = tmp_path_factory.mktemp("world")
    world = build_world(WorldConfig(seed=0, num_entities=200), root / "world", progress=False)
    build_index(root / "world", progress=False)
    tcfg = TaskConfig(max_hops=2, chain_per_hops=30, obfuscated=0, intersection=0, comparison=0)
    tasks = [t for t in build_tasks(world, tcfg, progress=False) if t.split == "train"]
    oracle = Oracle(world, load_engine(root / "world"), EnvConfig.from_dict(WORLD_ENV))
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
        model_overrides={
            "hidden_size": 64,
            "num_layers": 2,
            "num_heads": 2,
            "num_kv_heads": 1,
            "intermediate_size": 128,
        },
        learning_rate=1.5e-2,
        strip_think=True,
    )
    summary = run_sft(root / "world", root / "transcripts.jsonl", root / "student", scfg)
    return {
        "root": root,
        "world": root / "world",
        "tasks": root / "world" / "tasks" / "t",
        "student": root / "student",
        "env": dict(WORLD_ENV),
        "sft": summary,
    }
