"""Shared pieces for the rollout / eval tests: a five-article corpus, two tasks, a tiny tokenizer and model that
has memorised a search → answer transcript (so greedy rollouts really search, read and answer)."""

from __future__ import annotations

import functools

import torch

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.index.bm25s_engine import Bm25sEngine
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.types import Document, EvidenceStep, Task

DOCS = [
    Document(
        "city/1",
        "corpus://city/1",
        "Zorvan",
        "Zorvan is a city in Keldor. It was founded by Mira Tel.",
        "city/1",
    ),
    Document(
        "person/1", "corpus://person/1", "Mira Tel", "Mira Tel is an architect born in Ostra.", "person/1"
    ),
    Document("city/2", "corpus://city/2", "Ostra", "Ostra is a port city in Veland.", "city/2"),
    Document(
        "country/1",
        "corpus://country/1",
        "Keldor",
        "Keldor is a country. Its capital is Zorvan.",
        "country/1",
    ),
    Document("country/2", "corpus://country/2", "Veland", "Veland is a country on the coast.", "country/2"),
]


def make_task(i: int, question: str, answer: str, url: str) -> Task:
    ev = (EvidenceStep(entity="city/1", url=url),)
    return Task(f"t{i}", question, answer, (), "chain", 1, 1, "test", ev)


TASKS = [
    make_task(0, "Who founded Zorvan?", "Mira Tel", "corpus://city/1"),
    make_task(1, "Where was Mira Tel born?", "Ostra", "corpus://person/1"),
    make_task(2, "What is the capital of Keldor?", "Zorvan", "corpus://country/1"),
]


@functools.cache
def engine() -> Bm25sEngine:
    return Bm25sEngine.from_documents(DOCS)


def transcript(task: Task, cfg: EnvConfig) -> str:
    """The tag-protocol text of a search → answer episode, rendered by the real env."""
    env = SearchEnv(engine(), cfg)
    text = env.reset(task)
    for action in (
        f"<think>look it up</think><search> {task.question} </search>",
        f"<think>found it</think><answer> {task.answer} </answer>",
    ):
        obs = env.step(action).observation
        text += action + obs
    return text


@functools.cache
def tiny_agent(steps: int = 80):
    """(model, tokenizer): a student-sized Llama trained for `steps` Adam steps on one transcript per task."""
    cfg = EnvConfig(max_turns=4)
    texts = [transcript(t, cfg) for t in TASKS]
    tok = train_tokenizer(
        texts * 20 + [d.contents for d in DOCS] * 20, vocab_size=600, special_tokens=PROTOCOL_TAGS
    )
    model = tiny_llama(
        tok, TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128)
    )
    tok.padding_side = "right"  # training: positions count from 0 in every row
    batch = tok(texts, padding=True, return_tensors="pt")
    tok.padding_side = "left"
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok


def test_tiny_agent_learns_the_transcripts():
    model, tok = tiny_agent()
    text = transcript(TASKS[0], EnvConfig(max_turns=4))
    batch = tok([text], return_tensors="pt")
    with torch.no_grad():
        loss = model(**batch, labels=batch["input_ids"]).loss.item()
    assert loss < 0.5
