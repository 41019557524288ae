"""Opening a world's index in a new process: seconds to `load_engine` (integrity check included) and to the first
query, median over fresh processes. Writes bench/results/search_open.json.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_open.py WORLD [WORLD ...] --runs 3 --label after

`--qps QUERIES` instead times queries in one process (bench_search.py's query file; CPU time, best of 5
rounds, after one warm round) and `access(url)`, to compare the query cost of two index formats (run it once
with PYTHONPATH=<an older checkout>/src on an index that checkout built).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, sys, time
t0 = time.perf_counter()
from searchgym.index.build import load_engine
t1 = time.perf_counter()
engine = load_engine(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
hits = engine.search(sys.argv[3], 5)
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_query_s": t3 - t2, "hits": len(hits)}))
"""


QPS = """
import json, sys, time
from searchgym.index.build import load_engine
engine = load_engine(sys.argv[1])
queries = [q[1] for q in json.loads(open(sys.argv[2]).read())]
out = {}
for name, run in (("search", engine.search), ("rank", engine.rank)):
    for q in queries:
        run(q, 5)
    best = []
    for _ in range(5):
        t = time.process_time()
        for q in queries:
            run(q, 5)
        best.append(time.process_time() - t)
    out[name + "_qps"] = round(len(queries) / min(best))
url, t = engine.store.urls[len(engine) // 2], time.perf_counter()
for _ in range(1000):
    engine.access(url)
out["access_us"] = round((time.perf_counter() - t) * 1000, 2)
print(json.dumps(out))
"""


def measure(world: Path, backend: str, query: str, runs: int) -> dict:
    rows = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", CHILD, str(world), backend, query],
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    med = {k: round(statistics.median(r[k] for r in rows), 3) for k in ("import_s", "load_s")}
    med["first_query_ms"] = round(statistics.median(r["first_query_s"] for r in rows) * 1000, 2)
    med["open_and_first_query_s"] = round(
        statistics.median(r["load_s"] + r["first_query_s"] for r in rows), 3
    )
    return {"world": str(world), "num_docs": _num_docs(world, backend), "runs": runs, **med}


def _num_docs(world: Path, backend: str) -> int:
    return json.loads((world / "index" / backend / "index.json").read_text())["num_docs"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("worlds", nargs="+", type=Path)
    ap.add_argument("--backend", default="bm25s")
    ap.add_argument("--query", default="who founded the company")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--label", default="current")
    ap.add_argument("--qps", type=Path, help="a bench_search.py query file: time queries instead of opening")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "search_open.json")
    args = ap.parse_args()
    if args.qps:
        for w in args.worlds:
            run = subprocess.run(
                [sys.executable, "-c", QPS, str(w), str(args.qps)], capture_output=True, text=True
            )
            print(str(w), run.stdout.strip() or run.stderr.strip().splitlines()[-1])
        return
    results = json.loads(args.out.read_text()) if args.out.is_file() else {}
    rows = [measure(w, args.backend, args.query, args.runs) for w in args.worlds]
    results[args.label] = {"load_average": os.getloadavg(), "backend": args.backend, "rows": rows}
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
