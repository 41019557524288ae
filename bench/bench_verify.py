"""Edge verification throughput (edges/s) on one world, per backend.

    .venv/bin/python bench/bench_verify.py --world /tmp/searchgym-bench/world100000
    .venv/bin/python bench/bench_verify.py --entities 20000     # builds a world (verify=False) if missing
    .venv/bin/python bench/bench_verify.py --reference          # also one search per edge, and compare

`seconds` is wall time, `cpu_seconds` user + system time of this process and its forked workers (`--workers`),
`load_average` the machine's load before and after (other jobs share the cores). With `--reference` the retrieval
verdicts are also computed with one full search per edge (`verify.retrieved`, the check before the per-holder
shortcut) and `same_as_reference` says whether they agree on every edge.
Writes bench/results/verify.json.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

from searchgym.index.build import build_index, load_engine
from searchgym.io import write_json
from searchgym.world.store import World
from searchgym.world.verify import edge_queries, retrieved, verify_world


def cpu() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--world", help="an existing world directory (default: build one under /tmp/searchgym-bench)"
    )
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--backends", nargs="+", default=["bm25s", "tantivy"])
    ap.add_argument("--top-k", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--reference", action="store_true", help="also run one search per edge and compare")
    ap.add_argument("--out", default="bench/results/verify.json")
    args = ap.parse_args()

    path = Path(args.world or f"/tmp/searchgym-bench/world{args.entities}")
    if not (path / "manifest.json").is_file():
        from searchgym.pipeline import build_world
        from searchgym.world.build import WorldConfig

        build_world(WorldConfig(num_entities=args.entities, seed=0, verify=False), path, overwrite=True)
    world = World.load(path, check=False)
    t = time.perf_counter()
    n_edges = len(world.edges)
    _ = world.documents, world.facts, world.entities, world.noise
    results = {
        "command": "python bench/bench_verify.py " + " ".join(sys.argv[1:]),
        "world": {"path": str(path), "edges": n_edges, "documents": len(world.documents)},
        "world_load_s": round(time.perf_counter() - t, 2),
        "workers": args.workers,
        "backends": {},
    }
    for backend in args.backends:
        build_index(path, backend, progress=False)  # no-op when the index is fresh
        engine = load_engine(path, backend)
        load_before, c, t = os.getloadavg(), cpu(), time.perf_counter()
        report = verify_world(world, engine, top_k=args.top_k, progress=False, workers=args.workers)
        seconds, cpu_seconds = time.perf_counter() - t, cpu() - c
        totals = report.totals()
        row = {
            "seconds": round(seconds, 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "edges_per_s": round(totals["total"] / seconds),
            "edges_per_cpu_s": round(totals["total"] / cpu_seconds),
            "load_average": {"before": load_before, "after": os.getloadavg()},
            **totals,
            "failures": {
                check: sum(r["failures"][check] for r in report.summary().values())
                for check in ("grounded", "retrievable", "contradicted")
            },
        }
        if args.reference:
            queries, targets = edge_queries(world)
            c, t = cpu(), time.perf_counter()
            one_each = retrieved(engine, queries, targets, args.top_k, args.workers).tolist()
            row["reference"] = {
                "seconds": round(time.perf_counter() - t, 2),
                "cpu_seconds": round(cpu() - c, 2),
            }
            row["same_as_reference"] = one_each == [
                "retrievable" not in report.edge_failures[e.id] for e in world.edges
            ]
        results["backends"][backend] = row
        print(f"{backend}: {row}", flush=True)
    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
