"""Environment overhead per tool call: parse + search/access + observation rendering + tokenisation.

The model is not involved: the actions are scripted turns (searches built from article titles and words, accesses of
article URLs and parts, answers, malformed turns). The observation is tokenised the way the rollout does it
(`tokenizer(obs, add_special_tokens=False)`) with the project's byte-level BPE tokenizer
(`searchgym.models.tiny.train_tokenizer`, the `tokenizers` library) trained here on the world's corpus. Prints a table and writes bench/results/env.json.

    .venv/bin/python bench/bench_env.py                      # builds a 1,000-entity world in a temp dir
    .venv/bin/python bench/bench_env.py --world WORLD_DIR    # an existing world (its corpus.jsonl)
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from searchgym.env import EnvConfig, SearchEnv, step_batch
from searchgym.index.build import engine_from_documents
from searchgym.io import read_jsonl, write_json
from searchgym.types import Document, EvidenceStep, Task

RESULTS = Path(__file__).parent / "results" / "env.json"


def load_docs(args: argparse.Namespace) -> tuple[list[Document], str]:
    if args.world:
        world = Path(args.world)
    else:
        from searchgym.pipeline import build_world
        from searchgym.world.build import WorldConfig

        world = Path(tempfile.mkdtemp(prefix="bench_env_")) / "world"
        build_world(WorldConfig(seed=args.seed, num_entities=args.entities), world)
    return [Document(**row) for row in read_jsonl(world / "corpus.jsonl")], str(world)


def scripted_turn(rng: random.Random, docs: list[Document]) -> str:
    doc = rng.choice(docs)
    words = doc.text.split()
    roll = rng.random()
    think = "<think>Next step.</think>\n"
    if roll < 0.5:
        query = " ".join([doc.title, *rng.sample(words, min(3, len(words)))])
        return f"{think}<search>{query}</search>"
    if roll < 0.8:
        page = rng.choice(["", "", "#2"])
        return f"{think}<access>{doc.url}{page}</access>"
    if roll < 0.9:
        return f"{think}<answer>{doc.title}</answer>"
    return rng.choice(
        ["I will search now.", "<search>unclosed", f"{think}<access>https://nowhere/x</access>"]
    )


def task_for(doc: Document, i: int) -> Task:
    step = EvidenceStep(entity=doc.entity or doc.id, url=doc.url)
    return Task(f"bench/{i}", f"What is {doc.title}?", doc.title, (), "chain", 1, 1, "test", (step,))


def stats(xs: list[float]) -> dict[str, float]:
    ordered = sorted(xs)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return {"median": statistics.median(xs), "p99": p99, "mean": statistics.mean(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", help="an existing world directory (default: build one)")
    ap.add_argument("--entities", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--backend", default=None, help="search backend (default: the project default)")
    ap.add_argument("--calls", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=16, help="episodes per step_batch call")
    ap.add_argument("--vocab", type=int, default=4096)
    args = ap.parse_args()

    docs, world = load_docs(args)
    engine = engine_from_documents(docs, backend=args.backend)
    from searchgym.env.protocol import PROTOCOL_TAGS
    from searchgym.models.tiny import train_tokenizer

    t0 = time.perf_counter()
    tok = train_tokenizer(
        (f"{d.title}\n{d.text}" for d in docs), vocab_size=args.vocab, special_tokens=PROTOCOL_TAGS
    )
    train_s = time.perf_counter() - t0

    def encode(text: str) -> list[int]:
        return tok(text, add_special_tokens=False)["input_ids"]

    rng = random.Random(args.seed)
    cfg = EnvConfig(max_turns=10**9, max_invalid_turns=0)
    turns = [scripted_turn(rng, docs) for _ in range(args.calls)]

    env = SearchEnv(engine, cfg)
    env.reset(task_for(docs[0], 0))
    for turn in turns[:200]:  # warm-up: caches, lazy imports
        if env.done:
            env.reset(task_for(docs[0], 0))
        encode(env.step(turn)[0])
    by_kind: dict[str, dict[str, list[float]]] = {}
    total, steps, tokenize, obs_tokens = [], [], [], []
    for i, turn in enumerate(turns):
        if env.done:
            env.reset(task_for(docs[i % len(docs)], i))
        t0 = time.perf_counter_ns()
        obs, _, _, _, info = env.step(turn)
        t1 = time.perf_counter_ns()
        ids = encode(obs)
        t2 = time.perf_counter_ns()
        total.append((t2 - t0) / 1e6)
        steps.append((t1 - t0) / 1e6)
        tokenize.append((t2 - t1) / 1e6)
        kind = by_kind.setdefault(info.tool, {"total": [], "step": []})
        kind["total"].append(total[-1])
        kind["step"].append(steps[-1])
        obs_tokens.append(len(ids))

    envs = [SearchEnv(engine, cfg) for _ in range(args.batch)]
    for j, e in enumerate(envs):
        e.reset(task_for(docs[j % len(docs)], j))
    batched, batched_env = [], []  # each sample: mean cost per call over one step_batch of `batch` episodes
    for start in range(0, len(turns) - args.batch + 1, args.batch):
        chunk = turns[start : start + args.batch]
        for j, e in enumerate(envs):
            if e.done:
                e.reset(task_for(docs[j % len(docs)], j))
        t0 = time.perf_counter_ns()
        results = step_batch(envs, chunk)
        t1 = time.perf_counter_ns()
        for r in results:
            encode(r[0])
        t2 = time.perf_counter_ns()
        batched.append((t2 - t0) / 1e6 / args.batch)
        batched_env.append((t1 - t0) / 1e6 / args.batch)

    result = {
        "world": world,
        "documents": len(docs),
        "engine": engine.name,
        "calls": len(total),
        "tokenizer": {"vocab_size": len(tok), "train_seconds": round(train_s, 3)},
        "per_call_ms": stats(total),
        "env_step_ms": stats(steps),
        "tokenize_ms": stats(tokenize),
        "by_kind": {
            k: {
                "calls": len(v["total"]),
                "median_ms": statistics.median(v["total"]),
                "env_step_median_ms": statistics.median(v["step"]),
            }
            for k, v in sorted(by_kind.items())
        },
        "batched": {
            "batch": args.batch,
            "per_call_ms": stats(batched),
            "env_only_per_call_ms": stats(batched_env),
        },
        "observation_tokens": {"median": statistics.median(obs_tokens), "max": max(obs_tokens)},
        "target_median_ms": 1.0,
    }
    result["meets_target"] = result["per_call_ms"]["median"] <= 1.0
    write_json(RESULTS, result)
    print(
        f"{len(docs):,} documents, engine {engine.name}, {len(total):,} calls, tokenizer vocab {len(tok):,}"
    )
    print(f"{'':22s} {'median':>8s} {'p99':>8s} {'mean':>8s}  (ms)")
    rows = [("per call (all parts)", result["per_call_ms"]), ("  env.step", result["env_step_ms"])]
    rows += [("  tokenize obs", result["tokenize_ms"])]
    rows += [(f"batched x{args.batch} per call", result["batched"]["per_call_ms"])]
    rows += [("  env only", result["batched"]["env_only_per_call_ms"])]
    for name, st in rows:
        print(f"{name:22s} {st['median']:8.3f} {st['p99']:8.3f} {st['mean']:8.3f}")
    for k, v in result["by_kind"].items():
        print(
            f"  {k:8s} {v['calls']:5d} calls: median {v['median_ms']:.3f} ms (env.step {v['env_step_median_ms']:.3f})"
        )
    print(f"observation tokens: median {result['observation_tokens']['median']}; wrote {RESULTS}")


if __name__ == "__main__":
    main()
