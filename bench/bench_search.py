"""Search benchmark on one world: index build, load, single/batched query throughput and latency per backend,
rank_bm25 as the naive baseline, and the HTTP service under 1, 8 and 16 concurrent clients.

    .venv/bin/python bench/bench_search.py --entities 100000          # builds the world once, then reuses it
    .venv/bin/python bench/bench_search.py --world WORLD --queries 2000

Queries are what agents and verification send: "<holder name> <relation query phrase>" for random edges.
Writes bench/results/search.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from searchgym.index.build import build_index, load_engine
from searchgym.io import write_json
from searchgym.world.store import World


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    a = np.asarray(latencies_s) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 3), "p99_ms": round(float(np.percentile(a, 99)), 3)}


def get_world(args) -> World:
    path = Path(args.world or f"/tmp/searchgym-bench/world{args.entities}")
    if not (path / "manifest.json").is_file():
        from searchgym.pipeline import build_world
        from searchgym.world.build import WorldConfig

        print(f"building a {args.entities}-entity world at {path} (verify=False) ...", flush=True)
        t = time.perf_counter()
        build_world(WorldConfig(num_entities=args.entities, seed=0, verify=False), path, overwrite=True)
        print(f"  world built in {time.perf_counter() - t:.1f} s", flush=True)
    return World.load(path, check=False)


def make_queries(world: World, n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    relations = {r.name: r for r in world.schema.relations}
    queries, targets = [], []
    for e in rng.sample(world.edges, min(n, len(world.edges))):
        holder = world.holder(e)
        phrases = relations[e.relation].query or (e.relation.replace("_", " "),)
        queries.append(f"{world.entities[holder].name} {rng.choice(phrases)}")
        targets.append(world.doc_of(holder).id)
    return queries, targets


def bench_engine(engine, queries: list[str], targets: list[str], k: int, batch: int) -> dict:
    engine.batch_search(queries[:50], k)  # warm caches (stemmer, lazy structures)
    lat, hits = [], []
    t0, c0 = time.perf_counter(), time.process_time()
    for q in queries:
        t = time.perf_counter()
        hits.append(engine.search(q, k))
        lat.append(time.perf_counter() - t)
    single = len(queries) / (time.perf_counter() - t0)
    # CPU time of this process: what the engine costs when it is not waiting for a core on a shared machine
    single_cpu = len(queries) / (time.process_time() - c0)
    t0 = time.perf_counter()
    for s in range(0, len(queries), batch):
        engine.batch_search(queries[s : s + batch], k)
    batched = len(queries) / (time.perf_counter() - t0)
    recall = np.mean([any(h.doc_id == d for h in hs) for hs, d in zip(hits, targets, strict=True)])
    return {
        "single_qps": round(single),
        "single_qps_cpu": round(single_cpu),
        "batched_qps": round(batched),
        **percentiles(lat),
        f"recall@{k}": round(float(recall), 4),
    }


def bench_rank_bm25(world: World, queries: list[str], targets: list[str], k: int, seconds: float) -> dict:
    from rank_bm25 import BM25Okapi

    from searchgym.index.text import Tokenizer

    tok = Tokenizer()
    t = time.perf_counter()
    model = BM25Okapi([tok.tokenize(d.contents) for d in world.documents])
    build = time.perf_counter() - t
    lat, found = [], []
    t0 = time.perf_counter()
    for q, target in zip(queries, targets, strict=True):
        t = time.perf_counter()
        scores = model.get_scores(tok.tokenize(q))
        top = np.argpartition(-scores, k)[:k]
        lat.append(time.perf_counter() - t)
        found.append(any(world.documents[i].id == target for i in top))
        if time.perf_counter() - t0 > seconds:
            break
    return {
        "build_s": round(build, 2),
        "single_qps": round(len(lat) / sum(lat), 1),
        **percentiles(lat),
        f"recall@{k}": round(float(np.mean(found)), 4),
        "queries_measured": len(lat),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_http(
    world_dir: Path,
    backend: str,
    queries: list[str],
    k: int,
    batch: int,
    clients_list,
    seconds: float,
    max_requests: int,
):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "searchgym.cli",
        "serve",
        str(world_dir),
        "--port",
        str(port),
        "--backend",
        backend,
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.2)
        out = {}
        for size in (1, batch):
            for clients in clients_list:
                cpu = _cpu_seconds(proc.pid)
                row = _drive(url, queries, k, size, clients, seconds, max_requests)
                # server CPU per query: independent of how many other jobs share the machine's cores
                used = _cpu_seconds(proc.pid) - cpu
                row["server_cpu_ms_per_query"] = round(1000 * used / max(1, row["requests"] * size), 3)
                out[f"batch{size}_clients{clients}"] = row
                print(f"  http batch={size} clients={clients}: {row}", flush=True)
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _drive(
    url: str, queries: list[str], k: int, size: int, clients: int, seconds: float, max_requests: int
) -> dict:
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(cid: int) -> None:
        rng = random.Random(cid)
        mine, bad = [], 0
        with httpx.Client(base_url=url, timeout=10) as http:
            stop = time.monotonic() + seconds
            for _ in range(max_requests):
                if time.monotonic() > stop:
                    break
                body = {"queries": rng.sample(queries, size), "topk": k, "return_scores": True}
                t = time.perf_counter()
                try:
                    r = http.post("/retrieve", json=body)
                    ok = r.status_code == 200 and len(r.json()["result"]) == size
                except httpx.HTTPError:
                    ok = False
                mine.append(time.perf_counter() - t)
                bad += not ok
        with lock:
            lat.extend(mine)
            errors[0] += bad

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return {
        "requests": len(lat),
        "qps": round(len(lat) * size / wall),
        **percentiles(lat),
        "errors": errors[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--world", help="an existing world directory (default: build one under /tmp/searchgym-bench)"
    )
    ap.add_argument("--entities", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=3000)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--backends", nargs="+", default=["bm25s", "tantivy"])
    ap.add_argument("--baseline-seconds", type=float, default=20.0, help="time budget for rank_bm25 queries")
    ap.add_argument("--http-backend", default="bm25s")
    ap.add_argument("--http-clients", type=int, nargs="+", default=[1, 8, 16])
    ap.add_argument("--http-seconds", type=float, default=8.0)
    ap.add_argument("--http-max-requests", type=int, default=5000, help="per client")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--out", default="bench/results/search.json")
    args = ap.parse_args()

    world = get_world(args)
    queries, targets = make_queries(world, args.queries, seed=0)
    corpus_mb = (world.path / "corpus.jsonl").stat().st_size / 1e6
    results: dict = {
        "world": {
            "path": str(world.path),
            "documents": len(world.documents),
            "edges": len(world.edges),
            "corpus_mb": round(corpus_mb, 1),
        },
        "queries": len(queries),
        "k": args.k,
        "backends": {},
        "load_average_at_start": os.getloadavg(),
    }
    print(json.dumps(results["world"]), flush=True)
    for backend in args.backends:
        t = time.perf_counter()
        build_index(world.path, backend, overwrite=True, progress=False)
        build_s = time.perf_counter() - t
        t = time.perf_counter()
        engine = load_engine(world.path, backend)
        load_s = time.perf_counter() - t
        row = {
            "build_s": round(build_s, 2),
            "load_s": round(load_s, 3),
            **bench_engine(engine, queries, targets, args.k, args.batch),
        }
        fuzzy_queries = [q[:3] + q[4:] if len(q) > 8 else q for q in queries[:500]]  # one letter dropped
        t = time.perf_counter()
        engine.batch_search(fuzzy_queries, args.k)
        row["typo_qps"] = round(len(fuzzy_queries) / (time.perf_counter() - t))
        results["backends"][backend] = row
        print(f"{backend}: {row}", flush=True)
        engine.close()
    if not args.skip_baseline:
        row = bench_rank_bm25(world, queries, targets, args.k, args.baseline_seconds)
        results["backends"]["rank_bm25"] = row
        print(f"rank_bm25: {row}", flush=True)
    results["http"] = {
        "backend": args.http_backend,
        "batch": args.batch,
        **bench_http(
            world.path,
            args.http_backend,
            queries,
            args.k,
            args.batch,
            args.http_clients,
            args.http_seconds,
            args.http_max_requests,
        ),
    }
    results["load_average_at_end"] = os.getloadavg()  # the machine is shared: read figures against this
    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
