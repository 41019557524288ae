"""Share of rollout wall time spent outside the model, for a tiny model on CPU (target <= 5 %).

Builds a small world, memorises search -> answer transcripts of some of its tasks into a tiny Llama (so episodes
really search and answer), then times `rollout` and subtracts the generator's time inside the model's forward
passes and sampling. What remains is bookkeeping: stop checks, decoding, env steps (parse, search, rendering),
observation tokenisation. Prints and writes bench/results/bench_rollout.json.

    .venv/bin/python bench/bench_rollout.py [--tasks 16] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.index.build import build_index, load_engine
from searchgym.io import write_json
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.pipeline import build_world
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.hf import HFGenerator
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.synth import build_tasks
from searchgym.world.build import WorldConfig


def transcript(engine, cfg: EnvConfig, task) -> str:
    env = SearchEnv(engine, cfg)
    text = env.reset(task)
    for action in (
        f"<think>search</think><search> {task.question} </search>",
        f"<think>done</think><answer> {task.answer} </answer>",
    ):
        obs = env.step(action).observation
        text += action + obs
    return text


def memorise(texts: list[str], steps: int):
    tok = train_tokenizer(texts, vocab_size=2000, special_tokens=PROTOCOL_TAGS)
    model = tiny_llama(tok, TinyModelConfig.preset("student"))
    tok.padding_side = "right"
    batch = tok(texts, padding=True, return_tensors="pt")
    tok.padding_side = "left"
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval(), tok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--train-steps", type=int, default=80)
    ap.add_argument("--out", default="bench/results/bench_rollout.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        world_dir = Path(tmp) / "world"
        world = build_world(WorldConfig(seed=0, num_entities=300), world_dir, progress=False)
        build_index(world_dir, progress=False)
        engine = load_engine(world_dir)
        tasks = [
            t
            for t in build_tasks(
                world, TaskConfig(max_hops=1, obfuscated=0, intersection=0, comparison=0), progress=False
            )
            if t.hops == 1
        ][: args.tasks]
        cfg = EnvConfig(max_turns=4, topk=3, doc_chars=120)
        model, tok = memorise([transcript(engine, cfg, t) for t in tasks], args.train_steps)
        gen = HFGenerator(model, tok)
        rcfg = RolloutConfig(max_new_tokens=48, temperature=1.0)
        rollout(tasks[:2], lambda: SearchEnv(engine, cfg), gen, tok, rcfg)  # warm-up
        shares, walls, rewards, searches, tokens = [], [], [], [], []
        for r in range(args.rounds):
            gen.model_seconds = 0.0
            t0 = time.perf_counter()
            trajs = rollout(
                tasks,
                lambda: SearchEnv(engine, cfg),
                gen,
                tok,
                RolloutConfig.from_dict({**rcfg.to_dict(), "seed": r}),
            )
            wall = time.perf_counter() - t0
            walls.append(wall)
            shares.append((wall - gen.model_seconds) / wall)
            rewards.append(statistics.mean(t.reward for t in trajs))
            searches.append(sum(s.tool == "search" for t in trajs for s in t.steps))
            tokens.append(sum(len(t.completion_ids) for t in trajs))
    result = {
        "episodes_per_round": len(tasks),
        "rounds": args.rounds,
        "outside_model_share_median": statistics.median(shares),
        "outside_model_share_max": max(shares),
        "rollout_seconds_median": statistics.median(walls),
        "mean_reward": statistics.mean(rewards),
        "searches_per_round": statistics.mean(searches),
        "completion_tokens_per_round": statistics.mean(tokens),
        "target_share": 0.05,
        "torch_threads": torch.get_num_threads(),
    }
    for k, v in result.items():
        print(f"{k:32s} {v:.4f}" if isinstance(v, float) else f"{k:32s} {v}")
    write_json(Path(args.out), result)


if __name__ == "__main__":
    main()
