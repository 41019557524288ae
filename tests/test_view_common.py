"""Real inputs for the viewer tests, built once per test process: a tiny world with tasks, a tiny agent trained on
the oracle's transcripts of a few tasks (so it really searches, opens and answers), two eval directories written by
the real `evaluate` + `write_eval_dir` (an under-trained and a trained agent: tasks flip between them), a training
run whose `rollouts.jsonl` holds real grouped rollouts with real TRAC terms (`teacher_terms` over an `HFTeacher`),
a demo-shaped directory, and a 10,000-episode eval made by repeating real records."""

from __future__ import annotations

import atexit
import copy
import functools
import json
import re
import shutil
import tempfile
from pathlib import Path

import torch
import yaml

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.estimators import TRACBatch, compute, rollout_stats
from searchgym.advantage.teacher import HFTeacher
from searchgym.agents.oracle import Oracle
from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.eval.harness import EvalConfig, evaluate, summarize
from searchgym.eval.report import write_eval_dir
from searchgym.index.build import load_engine
from searchgym.io import write_json, write_jsonl
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.pipeline import build_world
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.hf import HFGenerator
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.store import load_tasks, save_tasks
from searchgym.tasks.synth import build_tasks
from searchgym.trainer.rollout_log import rollout_records as trainer_rollout_records
from searchgym.trainer.trac_grpo import TRACStep
from searchgym.world.build import WorldConfig

PROMPT = "Answer by searching. One action per turn: <search> q </search>, <access> url </access> or <answer> a </answer>.\nQuestion: {question}\n"  # fmt: skip
ENV = {"max_turns": 5, "topk": 3, "doc_chars": 80, "snippet": "best", "page_chars": 400,
       "require_think": False, "prompt": PROMPT}  # fmt: skip
ROLLOUT = {"max_new_tokens": 40, "max_total_tokens": 900}
ROLLOUT_KEYS = {"step", "task_id", "group", "sample", "question", "gold", "level", "type", "reward", "success",
                "advantage", "tokens", "token_ids", "env_mask", "steps", "episode", "trac"}  # fmt: skip
_THINK = re.compile(r"<think>.*?</think>\s*", re.S)


@functools.cache
def workdir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="searchgym-view-"))
    atexit.register(shutil.rmtree, path, True)
    return path


@functools.cache
def world() -> Path:
    w = build_world(WorldConfig(seed=1, num_entities=200), workdir() / "demo" / "world", True, progress=False)
    cfg = TaskConfig(seed=1, max_hops=2, chain_per_hops=12, obfuscated=4, intersection=4, comparison=4,
                     splits={"train": 0.5, "test": 0.5})  # fmt: skip
    save_tasks(build_tasks(w, cfg, progress=False), w.path, "demo", cfg.to_dict(), overwrite=True)
    return w.path


def tasks() -> list:
    return load_tasks(world() / "tasks" / "demo")


def eval_tasks() -> list:
    """12 tasks of every type: the first 8 are the agent's training transcripts."""
    ts = tasks()
    chains = [t for t in ts if t.type == "chain"]
    others = [next(t for t in ts if t.type == kind) for kind in ("comparison", "intersection", "obfuscated")]
    return chains[:9] + others


def env_cfg() -> EnvConfig:
    return EnvConfig.from_dict(ENV)


@functools.cache
def transcripts() -> tuple[str, ...]:
    engine = load_engine(world())
    from searchgym.world.store import World

    result = Oracle(World.load(world()), engine, env_cfg()).run(eval_tasks()[:8])
    texts = []
    for tr in result.transcripts:
        text = tr["prompt"]
        for turn in tr["turns"]:
            text += _THINK.sub("", turn["action"]) + turn["observation"]
        texts.append(text)
    return tuple(texts)


@functools.cache
def tokenizer():
    docs = [json.loads(line)["text"] for line in (world() / "corpus.jsonl").read_text().splitlines()]
    return train_tokenizer(list(transcripts()) * 10 + docs, vocab_size=900, special_tokens=PROTOCOL_TAGS)


BEFORE, STUDENT, AFTER = 20, 90, 140  # Adam steps: before (wrong), the RL student (sometimes right), after


@functools.cache
def agents() -> dict:
    """A tiny Llama trained on the transcripts, copied after BEFORE steps (still wrong) and AFTER (memorised)."""
    tok = tokenizer()
    model = tiny_llama(
        tok, TinyModelConfig(hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128)
    )
    texts = list(transcripts())
    tok.padding_side = "right"
    batch = tok(texts, padding=True, return_tensors="pt")
    tok.padding_side = "left"
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=4e-3)
    out = {}
    model.train()
    with torch.enable_grad():  # also when first called inside a caller's no_grad()
        for step in range(1, AFTER + 1):
            model(**batch, labels=labels).loss.backward()
            opt.step()
            opt.zero_grad()
            if step in (BEFORE, STUDENT):
                out[step] = copy.deepcopy(model).eval()
    out[AFTER] = model.eval()
    return out


def agent(steps: int):
    return agents()[steps]


def _eval_dir(out: Path, steps: int) -> Path:
    cfg = EvalConfig.from_dict({"split": "", "env": ENV, "rollout": {**ROLLOUT, "temperature": 0.0}})
    engine = load_engine(world())
    with torch.no_grad():
        records = evaluate(eval_tasks(), engine, HFGenerator(agent(steps), tokenizer()), tokenizer(), cfg)
    meta = {
        "model": f"tiny-{steps}",
        "tasks": "demo",
        "split": "",
        "protocol": "tags",
        "config": cfg.to_dict(),
    }
    return write_eval_dir(out, records, summarize(records), meta, overwrite=True)


@functools.cache
def eval_before() -> Path:
    return _eval_dir(workdir() / "demo" / "eval_before", BEFORE)


@functools.cache
def eval_after() -> Path:
    return _eval_dir(workdir() / "demo" / "eval_after", AFTER)


def rollout_records(step: int, task_list: list, group_size: int, seed: int) -> list[dict]:
    """Grouped sampled rollouts of the under-trained student, TRAC terms from the trained agent as teacher."""
    tok, student = tokenizer(), agent(STUDENT)
    engine = load_engine(world())
    rcfg = RolloutConfig.from_dict({**ROLLOUT, "temperature": 1.0, "seed": seed})
    batch_tasks = [t for t in task_list for _ in range(group_size)]
    with torch.no_grad():
        trajs = rollout(
            batch_tasks, lambda: SearchEnv(engine, env_cfg()), HFGenerator(student, tok), tok, rcfg
        )
    teacher = HFTeacher(agent(AFTER), tok)
    seqs = [tr.prompt_ids + tr.completion_ids for tr in trajs]
    masks = [[0] * len(tr.prompt_ids) + tr.env_mask for tr in trajs]
    scores = teacher.score_full(seqs, masks)
    T = max(len(tr.completion_ids) for tr in trajs)

    def completion(values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(len(trajs), T)
        for b, tr in enumerate(trajs):
            n, p = len(tr.completion_ids), len(tr.prompt_ids)
            out[b, :n] = values[b, p : p + n]
        return out

    mask = torch.zeros(len(trajs), T)
    behaviour = torch.zeros(len(trajs), T)
    for b, tr in enumerate(trajs):
        mask[b, : len(tr.env_mask)] = torch.tensor(tr.env_mask, dtype=torch.float)
        behaviour[b, : len(tr.logprobs)] = torch.tensor(tr.logprobs)
    rewards = torch.tensor([tr.reward for tr in trajs])
    success = torch.tensor([tr.episode.success for tr in trajs])
    tb = TRACBatch(rewards, group_size, mask, success, completion(scores[0]), behaviour, completion(scores[1]),
                   vocab_size=teacher.vocab_size)  # fmt: skip
    result = compute("trac", tb, TRACConfig())
    inputs = [
        {"task_id": t.id, "question": t.question, "gold": t.answers, "level": t.level, "type": t.type,
         "env_reward": tr.reward, "success": tr.episode.success, "env_steps": [s.to_dict() for s in tr.steps],
         "env_info": tr.episode.to_dict()}
        for t, tr in zip(batch_tasks, trajs, strict=True)
    ]  # fmt: skip
    rec = TRACStep(
        step=step, estimator="trac", advantages=result.advantages, trl_advantages=rewards,
        diagnostics=result.diagnostics, terms=result.terms, stats=rollout_stats(tb, TRACConfig()),
        rows=slice(0, len(trajs)), num_generations=group_size, inputs=inputs,
        completion_ids=[tr.completion_ids for tr in trajs], env_mask=[tr.env_mask for tr in trajs],
    )  # fmt: skip
    return trainer_rollout_records(rec, list(range(len(trajs))), tok)


@functools.cache
def train_run() -> Path:
    """A training output_dir as the trainer writes it: config.yaml, metrics.jsonl, rollouts.jsonl."""
    out = workdir() / "demo" / "rl"
    out.mkdir(parents=True, exist_ok=True)
    ts = eval_tasks()
    rows = rollout_records(1, ts[:2], 4, seed=3) + rollout_records(2, ts[2:4], 4, seed=4)
    write_jsonl(out / "rollouts.jsonl", rows)
    write_jsonl(out / "metrics.jsonl", [{"step": 1, "reward": 0.1}, {"step": 2, "reward": 0.2}])
    config = {"data": {"world": str(world()), "tasks": str(world() / "tasks" / "demo")}, "env": ENV,
              "output_dir": str(out)}  # fmt: skip
    (out / "config.yaml").write_text(yaml.safe_dump(config))
    return out


@functools.cache
def demo_dir() -> Path:
    """`searchgym demo --out` layout: world/, eval_before/, eval_after/, rl/."""
    eval_before(), eval_after(), train_run()
    return workdir() / "demo"


@functools.cache
def big_eval(n: int = 10_000) -> Path:
    """An eval directory of `n` episodes: the real records of both evals repeated as distinct samples."""
    from searchgym.io import read_jsonl

    base = list(read_jsonl(eval_before() / "trajectories.jsonl")) + list(
        read_jsonl(eval_after() / "trajectories.jsonl")
    )
    rows = []
    for k in range(n):
        r = dict(base[k % len(base)])
        r["sample"] = k // len(base)
        rows.append(r)
    out = workdir() / "big"
    out.mkdir(exist_ok=True)
    write_jsonl(out / "trajectories.jsonl", rows)
    write_json(out / "summary.json", {"meta": {"model": "big", "tasks": "demo", "world": str(world())}})
    return out


def test_fixture_rollouts_have_the_trainer_format():
    rows = [json.loads(line) for line in (train_run() / "rollouts.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(set(r) == ROLLOUT_KEYS for r in rows)
    for r in rows:
        assert len(r["tokens"]) == len(r["token_ids"]) == len(r["env_mask"]) == len(r["trac"]["r_hat"])
        assert len(r["trac"]["group_success"]) == 4 and 0.0 <= r["trac"]["w_d"] <= 1.0
        model = [w for w, m in zip(r["trac"]["omega"], r["env_mask"], strict=True) if m]
        assert all(0.0 <= w <= 1.0 for w in model)
    before = json.loads((eval_before() / "summary.json").read_text())
    after = json.loads((eval_after() / "summary.json").read_text())
    assert after["overall"]["em"] > before["overall"]["em"]  # the trained agent answers more: tasks flip
