"""World build benchmark: wall and CPU seconds per stage and peak RSS of a verified build (the default).

    .venv/bin/python bench/bench_world.py                 # 10k, 100k, 1M entities, verification on
    .venv/bin/python bench/bench_world.py --sizes 10000 100000 --no-verify
    .venv/bin/python bench/bench_world.py --keep /tmp/worlds   # keep the worlds (e.g. for bench_tasks.py)

Each size runs in a fresh subprocess (so peak RSS is its own) and builds into a temporary directory (or
`--keep DIR`/world-N). Per stage (generation, writing, index, verification) it records wall seconds; `cpu_seconds`
is user + system time of the build process and its forked workers, and `load_average` the machine's 1/5/15-minute
load before and after (other jobs share the 2 cores, so wall time exceeds CPU time / 2 when load is high).
After a verified build, `--tasks-per-entity` x N tasks (bench_tasks.py's mix) are synthesized from it: stages
`world_load` (parsing its records) and `tasks`, not counted in `seconds` (the build).
`growth_exponent` is the slope of log(seconds) over log(entities) between consecutive sizes, total and per stage
(1.0: linear).
Targets on the 2-core reference machine: 1M entities, verified, <= 10 min and <= 8 GB.
Results are printed and written to bench/results/world.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, os, resource, sys, time
from pathlib import Path
from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
n, out, verify, n_tasks, bench_dir = int(sys.argv[1]), Path(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4]), sys.argv[5]
load_before = os.getloadavg()
timings = {}
t = time.perf_counter()
w = build_world(WorldConfig(seed=0, num_entities=n, verify=verify), out, progress=False, timings=timings)
seconds = time.perf_counter() - t
c = w.manifest["counts"]
me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
tasks = None
if verify and n_tasks:  # tasks from the built world: its records parsed ("world_load"), then synthesized
    sys.path.insert(0, bench_dir)
    from bench_tasks import mix_for
    from searchgym.tasks.synth import synthesize
    t = time.perf_counter()
    _ = w.entities, w.edges, w.documents, w.facts
    timings["world_load"] = time.perf_counter() - t
    t = time.perf_counter()
    tasks = len(synthesize(w, mix_for(n_tasks, seed=0), progress=False).tasks)
    timings["tasks"] = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF)
v = w.manifest["verification"] or {}
print(json.dumps({
    "entities": n, "edges": c["edges"], "documents": c["documents"], "verified": verify,
    "verified_edges": sum(r["verified"] for r in v.values()) if verify else None,
    "tasks": tasks, "seconds": round(seconds, 2),
    "stages": {k: round(s, 2) for k, s in timings.items()},
    "cpu_seconds": round(cpu, 2),
    "tasks_cpu_seconds": round(after.ru_utime + after.ru_stime - me.ru_utime - me.ru_stime, 2),
    "peak_rss_gb": round(max(me.ru_maxrss, kids.ru_maxrss) / 2**20, 3),
    "peak_rss_gb_with_tasks": round(after.ru_maxrss / 2**20, 3),
    "load_average": {"before": [round(x, 2) for x in load_before], "after": [round(x, 2) for x in os.getloadavg()]},
    "corpus_mb": round((out / "corpus.jsonl").stat().st_size / 2**20, 1),
    "world_mb": round(sum(f["bytes"] for f in w.manifest["files"].values()) / 2**20, 1),
    "content_hash": w.manifest["content_hash"],
}))
"""
TARGETS = {1_000_000: {"seconds": 600, "peak_rss_gb": 8}}


def growth(rows: list[dict]) -> list[dict]:
    """Slope of log(time) over log(entities) between consecutive sizes: build seconds, CPU seconds, per stage."""
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        x = math.log(b["entities"] / a["entities"])
        pairs = {k: (a[k], b[k]) for k in ("seconds", "cpu_seconds")}
        pairs |= {k: (a["stages"][k], b["stages"][k]) for k in a["stages"] if k in b["stages"]}
        slopes = {k: round(math.log(v / u) / x, 2) for k, (u, v) in pairs.items() if u > 0 and v > 0}
        out.append({"from": a["entities"], "to": b["entities"], **slopes})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--no-verify", action="store_true", help="build without verification (and its index)")
    ap.add_argument(
        "--tasks-per-entity",
        type=float,
        default=0.1,
        help="tasks synthesized after a verified build (0: none)",
    )
    ap.add_argument("--keep", type=Path, help="build into DIR/world-N and keep it")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "world.json")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_world_") as tmp:
            out = (args.keep or Path(tmp)) / f"world-{n}"
            verify, tasks = "0" if args.no_verify else "1", str(int(n * args.tasks_per_entity))
            cmd = [sys.executable, "-c", CHILD, str(n), str(out), verify, tasks, str(Path(__file__).parent)]
            res = subprocess.run(
                cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}
            )
        if res.returncode != 0:
            sys.exit(f"build of {n:,} entities failed:\n{res.stderr}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        target = TARGETS.get(n)
        if target and not args.no_verify:
            row["target"] = target
            row["meets_target"] = all(row[k] <= v for k, v in target.items())
        rows.append(row)
        print(
            f"{n:>9,} entities  {row['edges']:>10,} edges  {row['seconds']:>8.1f} s (cpu {row['cpu_seconds']:.1f} s)"
            f"  {row['stages']}  peak {row['peak_rss_gb']:.2f} GB  load {row['load_average']['after'][0]}"
            + (f"  target {target} met={row['meets_target']}" if "target" in row else ""),
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "bench": "world_build",
        "command": "python bench/bench_world.py " + " ".join(sys.argv[1:]),
        "machine": platform.platform(),
        "cpus": len(os.sched_getaffinity(0)),
        "results": rows,
        "growth_exponent": growth(rows),
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
