"""Retrieval server benchmark: `searchgym serve` over HTTP next to the in-process engine, on the same queries.

    .venv/bin/python bench/bench_server.py                     # 3,600-entity world under --work, built once
    .venv/bin/python bench/bench_server.py --workers 1 2       # also a 2-process server

Queries are agent queries drawn from a real world (names, facts, questions, reverse look-ups, typos;
`bench_search.make_queries`). For every batch size (1 / 16 / 256 queries per request, top-3 as Search-R1 asks):

- in-process: `engine.batch_search` on one thread, per-batch latency and queries/s;
- HTTP: `searchgym serve` in its own process, 1 / 8 / 16 client threads of this process, each with a kept-alive
  connection, sending Search-R1's request (`return_scores: true`) and decoding the reply; a fixed number of requests
  per cell. Reported: queries/s, request latency p50/p99, errors, server CPU per query (psutil).
- HTTP overhead per query: 1-client HTTP wall time per query over in-process wall time per query (target ≤ 2 at
  batch ≥ 16; the client's own work, sending and decoding, is included); server CPU per query, and server plus
  client CPU per query, over in-process CPU per query (CPU time is far less sensitive than wall time to other
  load on the machine).

Then /health is probed every 20 ms while one heavy request runs (1,024 queries of 32 rare words: every word goes
through typo correction), and idle; p50/p99/max of the probe are reported. Writes bench/results/server.json.
Clients share the machine with the server (2 cores here), so client-side JSON decoding competes with it.
"""

from __future__ import annotations

import argparse
import os
import random
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).parent))
from bench_search import get_world, make_queries  # noqa: E402
from searchgym.index.build import build_index, load_engine  # noqa: E402
from searchgym.io import write_json  # noqa: E402

K = 3  # Search-R1's retriever.topk
BATCHES = (1, 16, 256)
CLIENTS = (1, 8, 16)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def ms(x: float) -> float:
    return round(1000 * x, 3)


def batches(queries: list[str], size: int, count: int, offset: int = 0) -> list[list[str]]:
    return [[queries[(offset + i * size + j) % len(queries)] for j in range(size)] for i in range(count)]


# ---- in-process ------------------------------------------------------------------------------------------
def bench_inprocess(engine, queries: list[str], size: int, total: int) -> dict:
    work = batches(queries, size, max(4, total // size))  # the batches one HTTP client sends
    lat = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for b in work:
        s = time.perf_counter()
        engine.batch_search(b, K)
        lat.append(time.perf_counter() - s)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    n = len(work) * size
    return {
        "queries": n,
        "qps": round(n / wall),
        "p50_ms": ms(pct(lat, 50)),
        "p99_ms": ms(pct(lat, 99)),
        "wall_ms_per_query": round(1000 * wall / n, 4),
        "cpu_ms_per_query": round(1000 * cpu / n, 4),
    }


# ---- HTTP ------------------------------------------------------------------------------------------------
class Server:
    def __init__(self, world: Path, workers: int):
        cmd = [
            sys.executable,
            "-m",
            "searchgym.cli",
            "serve",
            str(world),
            "--port",
            "0",
            "--workers",
            str(workers),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline().split()
        assert line[:1] == ["serving"], f"searchgym serve did not start: {line}"
        self.url = line[1]
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(self.url + "/health", timeout=10).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server never answered /health"
                time.sleep(0.1)
        self.ps = psutil.Process(self.proc.pid)

    def cpu(self) -> float:
        procs = [self.ps, *self.ps.children(recursive=True)]
        total = 0.0
        for p in procs:
            try:
                t = p.cpu_times()
                total += t.user + t.system
            except psutil.NoSuchProcess:
                pass
        return total

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)


def bench_http(server: Server, queries: list[str], size: int, clients: int, total: int) -> dict:
    per_client = max(4, total // (size * clients))
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client(c: int) -> None:
        work = batches(queries, size, per_client, offset=c * per_client * size)  # client 0: as in-process
        with httpx.Client(base_url=server.url, timeout=600) as http:
            http.post("/retrieve", json={"queries": work[0][:1], "topk": K, "return_scores": True})  # connect
            mine = []
            for b in work:
                s = time.perf_counter()
                r = http.post("/retrieve", json={"queries": b, "topk": K, "return_scores": True})
                ok = r.status_code == 200 and len(r.json()["result"]) == len(b)
                mine.append(time.perf_counter() - s)
                if not ok:
                    with lock:
                        errors[0] += 1
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    cpu0, client0, t0 = server.cpu(), time.process_time(), time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - t0, server.cpu() - cpu0
    client_cpu = time.process_time() - client0  # this process only runs the client threads meanwhile
    n = per_client * clients * size
    return {
        "queries": n,
        "qps": round(n / wall),
        "p50_ms": ms(pct(lat, 50)),
        "p99_ms": ms(pct(lat, 99)),
        "errors": errors[0],
        "wall_ms_per_query": round(1000 * wall / n, 4),
        "server_cpu_ms_per_query": round(1000 * cpu / n, 4),
        "client_cpu_ms_per_query": round(1000 * client_cpu / n, 4),
    }


def rare_queries(n: int, words: int = 32) -> list[str]:
    rng = random.Random(0)
    return [
        " ".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(words)) for _ in range(n)
    ]


def probe_health(url: str, seconds_cap: float, stop: threading.Event) -> list[float]:
    lat = []
    with httpx.Client(base_url=url, timeout=60) as http:
        end = time.monotonic() + seconds_cap  # safety stop
        while not stop.is_set() and time.monotonic() < end:
            s = time.perf_counter()
            http.get("/health").raise_for_status()
            lat.append(time.perf_counter() - s)
            time.sleep(0.02)
    return lat


def bench_health(server: Server, heavy_queries: int) -> dict:
    stop = threading.Event()
    threading.Timer(2.0, stop.set).start()
    idle = probe_health(server.url, 5, stop)
    heavy = rare_queries(heavy_queries)
    done = threading.Event()
    out: dict = {}

    def post_heavy():
        s = time.perf_counter()
        r = httpx.post(server.url + "/retrieve", json={"queries": heavy, "topk": K}, timeout=3600)
        out["heavy_s"], out["heavy_status"] = round(time.perf_counter() - s, 2), r.status_code
        done.set()

    thread = threading.Thread(target=post_heavy)
    thread.start()
    busy = probe_health(server.url, 3600, done)
    thread.join()
    return {
        "heavy_request": f"{heavy_queries} queries x 32 rare words, topk {K}",
        **out,
        "idle_probes": len(idle),
        "idle_p50_ms": ms(pct(idle, 50)),
        "idle_p99_ms": ms(pct(idle, 99)),
        "busy_probes": len(busy),
        "busy_p50_ms": ms(pct(busy, 50)),
        "busy_p99_ms": ms(pct(busy, 99)),
        "busy_max_ms": ms(max(busy)),
    }


def table(res: dict) -> str:
    rows = [
        "| mode | workers | clients | batch | q/s | p50 ms | p99 ms | errors | CPU ms/query | "
        "client CPU ms/query | HTTP / in-process: wall per query | server CPU | server + client CPU |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for b, r in res["inprocess"].items():
        rows.append(
            f"| in-process | – | 1 | {b} | {r['qps']:,} | {r['p50_ms']} | {r['p99_ms']} | – | "
            f"{r['cpu_ms_per_query']} | – | 1 | 1 | 1 |"
        )
    for w, cells in res["http"].items():
        for key, r in cells.items():
            c, b = key.split("x")
            base = res["inprocess"][b]
            wall = f"{r['wall_ms_per_query'] / base['wall_ms_per_query']:.2f}" if c == "1" else "–"
            cpu = f"{r['server_cpu_ms_per_query'] / base['cpu_ms_per_query']:.2f}"
            both = r["server_cpu_ms_per_query"] + r["client_cpu_ms_per_query"]
            rows.append(
                f"| HTTP | {w} | {c} | {b} | {r['qps']:,} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} | "
                f"{r['server_cpu_ms_per_query']} | {r['client_cpu_ms_per_query']} | {wall} | {cpu} | "
                f"{both / base['cpu_ms_per_query']:.2f} |"
            )
    lines = ["\n".join(rows), ""]
    for w, h in res["health"].items():
        lines.append(
            f"/health ({w} worker(s)) every 20 ms: idle p50 {h['idle_p50_ms']} / p99 {h['idle_p99_ms']} ms; during "
            f"the heavy request ({h['heavy_request']}, {h['heavy_s']} s, HTTP {h['heavy_status']}): "
            f"p50 {h['busy_p50_ms']} / p99 {h['busy_p99_ms']} / max {h['busy_max_ms']} ms over {h['busy_probes']} probes"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--entities", type=int, default=3600)
    ap.add_argument("--work", default="/tmp/searchgym-bench")
    ap.add_argument("--queries", type=int, default=2000, help="distinct agent queries drawn from the world")
    ap.add_argument(
        "--total", type=int, default=4096, help="queries per cell (at least 4 requests per client)"
    )
    ap.add_argument("--workers", type=int, nargs="+", default=[1])
    ap.add_argument(
        "--heavy", type=int, default=1024, help="queries in the heavy request of the /health probe"
    )
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "server.json"))
    args = ap.parse_args()

    world = get_world(Path(args.work), args.entities)
    build_index(world.path, progress=False)
    queries = [q for _, q, _ in make_queries(world, args.queries)]
    random.Random(0).shuffle(queries)
    engine = load_engine(world.path)
    engine.batch_search(queries, K)  # warm the caches (stemmer, fuzzy vocabulary) as in a running server
    res: dict = {
        "world": {"entities": args.entities, "documents": len(engine), "queries": len(queries)},
        "k": K,
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "inprocess": {str(b): bench_inprocess(engine, queries, b, args.total) for b in BATCHES},
        "http": {},
        "health": {},
    }
    for w in args.workers:
        server = Server(world.path, w)
        try:
            for _ in range(2 * w):  # warm the caches; the kernel picks the worker, so likely all of them
                httpx.post(server.url + "/retrieve", json={"queries": queries, "topk": K}, timeout=600)
            res["http"][str(w)] = {}
            for c in CLIENTS:
                for b in BATCHES:
                    res["http"][str(w)][f"{c}x{b}"] = cell = bench_http(server, queries, b, c, args.total)
                    print(f"workers {w} clients {c} batch {b}: {cell}", flush=True)
            res["health"][str(w)] = bench_health(server, args.heavy)
        finally:
            server.stop()
    res["load_average_at_end"] = os.getloadavg()  # the machine is shared: read the figures against this
    print(table(res))
    write_json(Path(args.out), res)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
