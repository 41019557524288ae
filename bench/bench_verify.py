"""Edge verification throughput (edges/s) on one world, per backend.

    .venv/bin/python bench/bench_verify.py --world /tmp/searchgym-bench/world100000
    .venv/bin/python bench/bench_verify.py --entities 20000     # builds a world (verify=False) if missing

Writes bench/results/verify.json.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from searchgym.index.build import build_index, load_engine
from searchgym.io import write_json
from searchgym.world.store import World
from searchgym.world.verify import verify_world


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--world", help="an existing world directory (default: build one under /tmp/searchgym-bench)"
    )
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--backends", nargs="+", default=["bm25s", "tantivy"])
    ap.add_argument("--top-k", type=int, default=5)
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
        "world": {"path": str(path), "edges": n_edges, "documents": len(world.documents)},
        "world_load_s": round(time.perf_counter() - t, 2),
        "load_average": os.getloadavg(),
        "backends": {},
    }
    for backend in args.backends:
        build_index(path, backend, progress=False)  # no-op when the index is fresh
        engine = load_engine(path, backend)
        t = time.perf_counter()
        report = verify_world(world, engine, top_k=args.top_k, progress=False)
        seconds = time.perf_counter() - t
        totals = report.totals()
        row = {
            "seconds": round(seconds, 2),
            "edges_per_s": round(totals["total"] / seconds),
            **totals,
            "failures": {
                check: sum(r["failures"][check] for r in report.summary().values())
                for check in ("grounded", "retrievable", "contradicted")
            },
        }
        results["backends"][backend] = row
        print(f"{backend}: {row}", flush=True)
    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
