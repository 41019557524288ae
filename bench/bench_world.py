"""World build benchmark: wall time and peak RSS for graph + corpus (verification off).

    .venv/bin/python bench/bench_world.py                 # 10k, 100k, 1M entities
    .venv/bin/python bench/bench_world.py --sizes 10000 100000

Each size runs in a fresh subprocess (so peak RSS is its own) and builds into a temporary directory.
`seconds` is wall time, `cpu_seconds` the process's user + system time (they differ on a shared, loaded machine).
Targets on the 2-core reference machine: 100k entities <= 60 s; 1M entities <= 10 min and <= 8 GB.
Results are printed and written to bench/results/world.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, resource, sys, time
from pathlib import Path
from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
n, out = int(sys.argv[1]), Path(sys.argv[2])
t = time.perf_counter()
w = build_world(WorldConfig(seed=0, num_entities=n, verify=False), out, progress=False)
seconds = time.perf_counter() - t
c = w.manifest["counts"]
print(json.dumps({
    "entities": n, "edges": c["edges"], "documents": c["documents"], "seconds": round(seconds, 2),
    "cpu_seconds": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime, 2),
    "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
    "corpus_mb": round((out / "corpus.jsonl").stat().st_size / 2**20, 1),
    "world_mb": round(sum(f["bytes"] for f in w.manifest["files"].values()) / 2**20, 1),
}))
"""
TARGETS = {100_000: {"seconds": 60, "peak_rss_gb": 8}, 1_000_000: {"seconds": 600, "peak_rss_gb": 8}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "world.json")
    args = ap.parse_args()
    rows = []
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench_world_") as tmp:
            res = subprocess.run(
                [sys.executable, "-c", CHILD, str(n), str(Path(tmp) / "w")], capture_output=True, text=True
            )
        if res.returncode != 0:
            sys.exit(f"build of {n:,} entities failed:\n{res.stderr}")
        row = json.loads(res.stdout.strip().splitlines()[-1])
        target = TARGETS.get(n)
        if target:
            row["target"] = target
            row["meets_target"] = all(row[k] <= v for k, v in target.items())
        rows.append(row)
        print(
            f"{n:>9,} entities  {row['edges']:>10,} edges  {row['seconds']:>8.1f} s (cpu {row['cpu_seconds']:.1f} s)  "
            f"peak {row['peak_rss_gb']:.2f} GB  corpus {row['corpus_mb']:.0f} MB"
            + (f"  target {target} met={row['meets_target']}" if target else ""),
            flush=True,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"bench": "world_build", "machine": platform.platform(), "cpus": _cpus(), "results": rows}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
