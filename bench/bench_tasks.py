"""Task synthesis throughput on a large world and oracle success on the default world.

    .venv/bin/python bench/bench_tasks.py [--entities 100000] [--tasks 100000] [--work /tmp/searchgym-bench]
    .venv/bin/python bench/bench_tasks.py --entities 1000000 --oracle-sample 10000 --out /tmp/tasks.json

Targets (issue 4): 100k tasks in <= 60 s on a 100k-entity world; oracle success >= 99 % on the default world
(3,600 entities, default TaskConfig). World building and loading are timed separately, not counted as synthesis.
Readability (issue 15) of the default world's tasks per level: max / mean clause depth (`templates.clause_depth`),
question length, longest sentence, share asked in several sentences.
`--oracle-sample N` also runs the oracle on a seeded sample of N of the big world's tasks (`oracle_sample`).
Writes bench/results/tasks.json (or --out); sections skipped (--skip-synthesis, --skip-oracle) keep their last values.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections import Counter
from pathlib import Path

from searchgym.agents.oracle import Oracle
from searchgym.index.build import load_engine
from searchgym.io import read_json, write_json
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.forms import type_nouns
from searchgym.tasks.synth import synthesize
from searchgym.tasks.templates import readability
from searchgym.world.build import WorldConfig
from searchgym.world.store import World

RESULTS = Path(__file__).parent / "results" / "tasks.json"


def world_at(path: Path, cfg: WorldConfig) -> tuple[World, float, float]:
    """Load the world at `path` (building it, with verification, if missing); returns it with build and load
    seconds. The world's records are parsed here, not inside the timed synthesis."""
    t0 = time.perf_counter()
    if not (path / "manifest.json").exists():
        build_world(cfg, path, overwrite=True, progress=True)
    t1 = time.perf_counter()
    world = World.load(path)
    _ = world.entities, world.edges, world.documents, world.facts
    return world, t1 - t0, time.perf_counter() - t1


def mix_for(total: int, seed: int) -> TaskConfig:
    """Half chains (spread over 1..5 hops), 20 % obfuscated, 15 % intersections, 15 % comparisons."""
    return TaskConfig(
        seed=seed,
        chain_per_hops=total // 10,
        obfuscated=total // 5,
        intersection=total * 3 // 20,
        comparison=total * 3 // 20,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--work", type=Path, default=Path("/tmp/searchgym-bench"))
    ap.add_argument("--skip-oracle", action="store_true")
    ap.add_argument("--skip-synthesis", action="store_true")
    ap.add_argument(
        "--oracle-sample", type=int, default=0, help="also run the oracle on N of the big world's tasks"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    result = read_json(args.out, "delete it and rerun") if args.out.exists() else {}
    result["machine"] = {
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),  # other jobs share the machine
    }
    if not args.skip_synthesis:
        big, build_s, load_s = world_at(
            args.work / f"world-{args.entities}", WorldConfig(num_entities=args.entities)
        )
        cfg = mix_for(args.tasks, seed=0)
        t0, c0 = time.perf_counter(), time.process_time()
        syn = synthesize(big, cfg, progress=False)
        tasks, shortfall = syn.tasks, syn.shortfall
        synth_s, synth_cpu = time.perf_counter() - t0, time.process_time() - c0
        result["synthesis"] = {
            "world_entities": len(big.entities),
            "world_edges": len(big.edges),
            "verified_edges": len(big.verified_edges()),
            "world_build_s": round(build_s, 1),
            "world_load_s": round(load_s, 1),
            "requested": args.tasks,
            "tasks": len(tasks),
            "seconds": round(synth_s, 2),
            "cpu_seconds": round(synth_cpu, 2),
            "tasks_per_s": round(len(tasks) / synth_s, 1),
            "target": "100k tasks <= 60 s",
            "per_type": dict(sorted(Counter(t.type for t in tasks).items())),
            "shortfall": shortfall,
        }
        print(f"synthesis: {len(tasks)} tasks in {synth_s:.1f} s ({len(tasks) / synth_s:.0f}/s)")
        if args.oracle_sample:  # a seeded sample of the big world's tasks, searched in the big world's index
            sample = random.Random(0).sample(tasks, min(args.oracle_sample, len(tasks)))
            result["oracle_sample"] = run_oracle(big, load_engine(big.path), sample)
            print(
                f"oracle on {len(sample)} tasks of the big world: {result['oracle_sample']['success']['all']:.2%}"
            )
        del big, tasks

    world, _, _ = world_at(args.work / "world-default", WorldConfig())
    tasks = synthesize(world, TaskConfig(), progress=False).tasks
    nouns = frozenset(n.split()[0] for n in type_nouns(world.schema).values())
    result["readability"] = readability(tasks, nouns)
    worst = result["readability"]["all"]
    print(
        f"readability: max clause depth {worst['max_clause_depth']}, longest sentence {worst['max_sentence_chars']}"
    )
    if not args.skip_oracle:
        result["oracle"] = run_oracle(world, load_engine(world.path), tasks)
        oracle = result["oracle"]
        print(f"oracle: {oracle['success']['all']:.2%} of {len(tasks)} tasks in {oracle['seconds']:.1f} s")
    write_json(args.out, result)
    print(f"wrote {args.out}")


def run_oracle(world: World, engine, tasks: list) -> dict:
    t0, c0 = time.perf_counter(), time.process_time()
    res = Oracle(world, engine).run(tasks, progress=True)
    return {
        "world_entities": len(world.entities),
        "tasks": len(tasks),
        "seconds": round(time.perf_counter() - t0, 1),
        "cpu_seconds": round(time.process_time() - c0, 1),
        "success": {k: round(v["success"], 4) for k, v in res.table().items()},
        "counts": {k: v["n"] for k, v in res.table().items()},
        "unsolved": res.unsolved,
        "mean_turns": round(sum(len(t["turns"]) for t in res.transcripts) / max(len(tasks), 1), 2),
        "target": "success >= 0.99",
    }


if __name__ == "__main__":
    main()
