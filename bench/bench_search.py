"""Search benchmark: our engines next to the peers, on the same world corpus and the same agent queries.

    .venv/bin/python bench/bench_search.py --sizes 10000 100000 1000000 \
        --peer-python /work/venvs/searchpeers/bin/python [--pyserini-python /work/venvs/pyserini/bin/python]

Per corpus size: a world is built once under --work (verify=False: only its corpus is needed), 2,000 agent
queries are drawn from it (names, facts, questions, reverse look-ups, typos; `make_queries`), every engine's
index is built once, then each round starts every engine in a fresh process, one after another (so a change in
machine load hits every engine of a round alike), and measures: load time, first-query latency, single-query
and batch-16 throughput, recall@5 of the holder article, peak RSS. Figures are medians over the rounds.
Writes bench/results/search.json and prints the table with each engine's ratio to bm25s + numba.

Engines (`ENGINES`): searchgym's bm25s and tantivy backends; bm25s 0.3.16 used directly (numpy and numba
backends, its own tokenizer and stemmer); tantivy 0.27 used directly (en_stem fields, lenient query parser);
rank_bm25 on a query subsample (it scores every document in Python); Pyserini (Lucene) when its interpreter is
given and runs. Peers run under --peer-python, a venv holding only them (`bench/README.md`); a peer that cannot
run is skipped with the reason printed and recorded.

The worker half of this file (`worker`, run as `bench_search.py worker ENGINE ...`) imports nothing from
searchgym unless the engine is ours, so it runs in the peers' venv.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

KINDS = ("name", "fact", "question", "reverse", "typo")
# ours: full hits (id, url, title, page text, score), as agents get them; "-ids": `rank`, ids and scores only,
# what the peers return
OURS = {
    "searchgym-bm25s": "bm25s",
    "searchgym-bm25s-ids": "bm25s",
    "searchgym-tantivy": "tantivy",
    "searchgym-tantivy-ids": "tantivy",
}
PEERS = ("bm25s-numpy", "bm25s-numba", "tantivy", "rank_bm25", "pyserini")
ENGINES = (*OURS, *PEERS)
BATCH = 16
K = 5


# ---- queries ----------------------------------------------------------------------------------------------
def _typo(rng, word: str) -> str:
    """One edit (deletion, substitution, adjacent swap or insertion) of `word`."""
    i, c = rng.randrange(len(word)), rng.choice("abcdefghijklmnopqrstuvwxyz")
    op = rng.choice(("delete", "substitute", "swap", "insert"))
    if op == "delete":
        return word[:i] + word[i + 1 :]
    if op == "substitute":
        return word[:i] + (c if c != word[i].lower() else "z") + word[i + 1 :]
    if op == "swap" and i < len(word) - 1 and word[i] != word[i + 1]:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    return word[:i] + c + word[i:]


def make_queries(world, n: int, seed: int = 0) -> list[tuple[str, str, str]]:
    """(kind, query, doc id of the holder article), n/5 of each kind:

    name: an entity's name; fact: "<holder name> <relation query phrase>"; question: a relation or attribute
    question of the schema about the holder; reverse: two facts of one holder by their other ends
    ("born in Pubrarburg citizen of Lorora"), only where exactly one entity holds both; typo: a name or fact
    query with one edit in a word of 5+ letters.
    """
    import random

    rng = random.Random(seed)
    per, schema = n // len(KINDS), world.schema
    entities, edges = list(world.entities.values()), world.edges

    def name(eid: str) -> str:
        return world.entities[eid].name

    def article(eid: str) -> str:
        return world.doc_of(eid).id

    out = [("name", e.name, article(e.id)) for e in rng.sample(entities, per)]
    for e in rng.sample(edges, per):
        holder = world.holder(e)
        out.append(
            ("fact", f"{name(holder)} {rng.choice(schema.relation(e.relation).query)}", article(holder))
        )
    questions: list[tuple[str, str, str]] = []
    while len(questions) < per:
        if rng.random() < 0.5:
            e = rng.choice(edges)
            holder, templates = world.holder(e), schema.relation(e.relation).questions
        else:
            ent = rng.choice(entities)
            attrs = [a for a in schema.entity_type(ent.type).attributes if a.questions]
            holder, templates = ent.id, rng.choice(attrs).questions if attrs else ()
        if templates:
            questions.append(("question", rng.choice(templates).format(x=name(holder)), article(holder)))
    out += questions
    held: dict[str, list[tuple[str, str]]] = {}
    holders_of: dict[tuple[str, str], set[str]] = {}
    for e in edges:
        holder, other = world.orient(e)
        held.setdefault(holder, []).append((e.relation, other))
        holders_of.setdefault((e.relation, other), set()).add(holder)
    multi = sorted(h for h, facts in held.items() if len({r for r, _ in facts}) >= 2)
    reverse: list[tuple[str, str, str]] = []
    while len(reverse) < per:
        holder = rng.choice(multi)
        (r1, o1), (r2, o2) = rng.sample(held[holder], 2)
        if r1 == r2 or len(holders_of[(r1, o1)] & holders_of[(r2, o2)]) != 1:
            continue
        p1, p2 = rng.choice(schema.relation(r1).query), rng.choice(schema.relation(r2).query)
        reverse.append(("reverse", f"{p1} {name(o1)} {p2} {name(o2)}", article(holder)))
    out += reverse
    for _, query, target in rng.sample(out[: 2 * per], per):
        words = query.split()
        long = [i for i, w in enumerate(words) if len(w) >= 5 and w.isalpha()]
        if long:
            i = rng.choice(long)
            words[i] = _typo(rng, words[i])
        out.append(("typo", " ".join(words), target))
    return out


# ---- engines (worker side) --------------------------------------------------------------------------------
def _corpus(world: Path) -> tuple[list[str], list[str]]:
    ids, texts = [], []
    with open(world / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ids.append(row["id"])
            texts.append(f"{row['title']}\n{row['text']}")
    return ids, texts


class Ours:
    def __init__(self, world: Path, backend: str, ids_only: bool):
        from searchgym.index.build import load_engine

        self.engine, self.ids_only = load_engine(world, backend), ids_only

    def search(self, q: str) -> list[str]:
        if self.ids_only:
            return [i for i, _ in self.engine.rank(q, K)]
        return [h.doc_id for h in self.engine.search(q, K)]

    def batch(self, qs: list[str]) -> list[list[str]]:
        if self.ids_only:
            return [[i for i, _ in self.engine.rank(q, K)] for q in qs]
        return [[h.doc_id for h in hits] for hits in self.engine.batch_search(qs, K)]


class Bm25sDirect:
    """bm25s as its README uses it: bm25s.tokenize with stop words and a Snowball stemmer, BM25().index."""

    def __init__(self, world: Path, store: Path, backend: str):
        import bm25s
        import Stemmer

        self.bm25s, self.stemmer = bm25s, Stemmer.Stemmer("english")
        self.model = bm25s.BM25.load(store, backend=backend, show_progress=False)
        self.model.backend = backend
        self.ids = json.loads((store / "ids.json").read_text())

    @staticmethod
    def build(world: Path, store: Path) -> None:
        import bm25s
        import Stemmer

        ids, texts = _corpus(world)
        tokens = bm25s.tokenize(
            texts, stopwords="en", stemmer=Stemmer.Stemmer("english"), show_progress=False
        )
        model = bm25s.BM25()
        model.index(tokens, show_progress=False)
        model.save(store)
        (store / "ids.json").write_text(json.dumps(ids))

    def _tokens(self, qs: list[str]):
        return self.bm25s.tokenize(
            qs, stopwords="en", stemmer=self.stemmer, show_progress=False, return_ids=False
        )

    def batch(self, qs: list[str]) -> list[list[str]]:
        docs, _ = self.model.retrieve(self._tokens(qs), k=K, show_progress=False, n_threads=1)
        return [[self.ids[i] for i in row] for row in docs.tolist()]

    def search(self, q: str) -> list[str]:
        return self.batch([q])[0]


class TantivyDirect:
    """tantivy with two en_stem text fields and its lenient query parser over both."""

    def __init__(self, world: Path, store: Path):
        import tantivy

        self.index = tantivy.Index.open(str(store))
        self.searcher = self.index.searcher()
        self.ids = json.loads((store / "ids.json").read_text())

    @staticmethod
    def build(world: Path, store: Path) -> None:
        import tantivy

        b = tantivy.SchemaBuilder()
        b.add_text_field("title", tokenizer_name="en_stem")
        b.add_text_field("body", tokenizer_name="en_stem")
        b.add_unsigned_field("idx", fast=True)
        index = tantivy.Index(b.build(), path=str(store))
        writer = index.writer(heap_size=256_000_000, num_threads=1)
        ids, texts = _corpus(world)
        for i, text in enumerate(texts):
            title, _, body = text.partition("\n")
            doc = tantivy.Document(title=title, body=body)
            doc.add_unsigned("idx", i)  # idx=i in the constructor would be an i64 into a u64 field
            writer.add_document(doc)
        writer.commit()
        writer.wait_merging_threads()
        (store / "ids.json").write_text(json.dumps(ids))

    def search(self, q: str) -> list[str]:
        query, _ = self.index.parse_query_lenient(q, ["title", "body"])
        hits = self.searcher.search(query, K).hits
        positions = self.searcher.fast_field_values("idx", [a for _, a in hits]) if hits else []
        return [self.ids[int(i)] for i in positions]

    def batch(self, qs: list[str]) -> list[list[str]]:
        return [self.search(q) for q in qs]


class RankBm25:
    """rank_bm25's BM25Okapi (scores every document per query in numpy), with bm25s's tokenizer."""

    def __init__(self, world: Path, store: Path):
        import bm25s
        import Stemmer
        from rank_bm25 import BM25Okapi

        self.bm25s, self.stemmer = bm25s, Stemmer.Stemmer("english")
        self.ids, texts = _corpus(world)
        tokens = bm25s.tokenize(
            texts, stopwords="en", stemmer=self.stemmer, show_progress=False, return_ids=False
        )
        self.model = BM25Okapi(tokens)

    def search(self, q: str) -> list[str]:
        import numpy as np

        tokens = self.bm25s.tokenize(
            [q], stopwords="en", stemmer=self.stemmer, show_progress=False, return_ids=False
        )
        scores = self.model.get_scores(tokens[0])
        top = np.argsort(-scores, kind="stable")[:K]
        return [self.ids[i] for i in top]

    def batch(self, qs: list[str]) -> list[list[str]]:
        return [self.search(q) for q in qs]


class Pyserini:
    """Pyserini's LuceneSearcher (BM25, k1 0.9 b 0.4 defaults) over a JsonCollection index."""

    def __init__(self, world: Path, store: Path):
        from pyserini.search.lucene import LuceneSearcher

        self.searcher = LuceneSearcher(str(store / "index"))

    @staticmethod
    def build(world: Path, store: Path) -> None:
        docs = store / "docs"
        docs.mkdir(parents=True, exist_ok=True)
        ids, texts = _corpus(world)
        with open(docs / "docs.jsonl", "w", encoding="utf-8") as f:
            for i, text in zip(ids, texts, strict=True):
                f.write(json.dumps({"id": i, "contents": text}) + "\n")
        cmd = [sys.executable, "-m", "pyserini.index.lucene", "--collection", "JsonCollection", "--input",
               str(docs), "--index", str(store / "index"), "--generator", "DefaultLuceneDocumentGenerator",
               "--threads", "1"]  # fmt: skip
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)

    def search(self, q: str) -> list[str]:
        return [h.docid for h in self.searcher.search(q, k=K)]

    def batch(self, qs: list[str]) -> list[list[str]]:
        out = self.searcher.batch_search(qs, [str(i) for i in range(len(qs))], k=K, threads=1)
        return [[h.docid for h in out[str(i)]] for i in range(len(qs))]


def open_engine(name: str, world: Path, store: Path):
    if name in OURS:
        return Ours(world, OURS[name], name.endswith("-ids"))
    if name.startswith("bm25s-"):
        return Bm25sDirect(world, store, name.split("-", 1)[1])
    return {"tantivy": TantivyDirect, "rank_bm25": RankBm25, "pyserini": Pyserini}[name](world, store)


def build_engine(name: str, world: Path, store: Path) -> None:
    if name in OURS:
        from searchgym.index.build import build_index

        build_index(world, OURS[name], progress=False)
    elif name.startswith("bm25s-"):
        Bm25sDirect.build(world, store)
    elif name in ("tantivy", "pyserini"):
        {"tantivy": TantivyDirect, "pyserini": Pyserini}[name].build(world, store)


def _peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM; ru_maxrss would report the parent's if that was larger)."""
    with open("/proc/self/status") as f:
        return next(int(x.split()[1]) / 1024 for x in f if x.startswith("VmHWM:"))


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of fn(): on a shared machine the CPU time is what the
    engine costs, the wall time also holds waiting for a core."""
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def worker(args) -> None:
    """One engine in this fresh process: load, first query, then single and batch-16 passes; JSON to stdout."""
    world, store = Path(args.world), Path(args.store)
    if args.build:
        store.mkdir(parents=True, exist_ok=True)
        build_engine(args.engine, world, store)
        return
    rows = json.loads(Path(args.queries).read_text())
    if args.limit:
        rows = rows[:: max(1, len(rows) // args.limit)][: args.limit]
    queries = [q for _, q, _ in rows]
    t = time.perf_counter()
    engine = open_engine(args.engine, world, store)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    engine.search(queries[0])  # includes any compilation or lazy set-up the engine does on first use
    first_ms = 1000 * (time.perf_counter() - t)
    results: list[list[str]] = []
    single_wall, single_cpu = _timed(lambda: results.extend(engine.search(q) for q in queries))
    batches = [queries[s : s + BATCH] for s in range(0, len(queries), BATCH)]
    batch_wall, batch_cpu = _timed(lambda: [engine.batch(b) for b in batches])
    found = {kind: [] for kind in KINDS}
    for (kind, _, target), got in zip(rows, results, strict=True):
        found[kind].append(target in got)
    hits = [x for v in found.values() for x in v]
    n = len(queries)
    out = {
        "load_s": round(load_s, 3),
        "first_query_ms": round(first_ms, 2),
        "single_qps": round(n / single_wall, 1),
        "batch16_qps": round(n / batch_wall, 1),
        "single_qps_cpu": round(n / single_cpu, 1),
        "batch16_qps_cpu": round(n / batch_cpu, 1),
        "recall@5": round(sum(hits) / len(hits), 4),
        "recall@5_by_kind": {k: round(sum(v) / len(v), 4) for k, v in found.items() if v},
        "queries": n,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }
    if isinstance(engine, Ours) and hasattr(engine.engine, "kernel"):  # the bm25s engine: C kernel or numpy
        out["kernel"] = engine.engine.kernel is not None
    print("RESULT " + json.dumps(out), flush=True)


# ---- driver -----------------------------------------------------------------------------------------------
def _run(python: str, args: list[str], timeout: float) -> tuple[dict | None, str]:
    """Run a worker; (result, error text)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    try:
        p = subprocess.run(
            [python, __file__, "worker", *args], capture_output=True, text=True, timeout=timeout, env=env
        )
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    lines = [x for x in p.stdout.splitlines() if x.startswith("RESULT ")]
    if p.returncode != 0:
        return None, (p.stderr.strip().splitlines() or [f"exit {p.returncode}"])[-1]
    return (json.loads(lines[-1][7:]) if lines else {}), ""


def get_world(work: Path, size: int):
    from searchgym.world.build import WorldConfig, build_world
    from searchgym.world.store import World

    path = work / f"world{size}"
    if not (path / "manifest.json").is_file():
        print(f"building a {size:,}-entity world at {path} (verify=False) ...", flush=True)
        t = time.perf_counter()
        build_world(
            WorldConfig(num_entities=size, seed=0, verify=False), path, overwrite=True, progress=False
        )
        print(f"  built in {time.perf_counter() - t:.0f} s", flush=True)
    return World.load(path, check=False)


def bench_size(args, size: int) -> dict:
    work = Path(args.work)
    world = get_world(work, size)
    queries = work / f"queries{size}.json"
    if not queries.is_file():
        queries.write_text(json.dumps(make_queries(world, args.queries, seed=0)))
    pythons = {e: sys.executable for e in OURS}
    pythons |= {e: args.peer_python for e in PEERS if e != "pyserini" and args.peer_python}
    if args.pyserini_python:
        pythons["pyserini"] = args.pyserini_python
    engines = [e for e in args.engines if e in pythons]
    skipped = {
        e: "its interpreter is not given (--peer-python / --pyserini-python)"
        for e in args.engines
        if e not in pythons
    }
    common = ["--world", str(world.path), "--queries", str(queries)]
    for e in engines:  # build every index once, outside the measured rounds
        if e == "rank_bm25" or (e not in OURS and (work / f"peers{size}" / e / "done").is_file()):
            continue
        t = time.perf_counter()
        store = work / f"peers{size}" / e
        _, err = _run(pythons[e], [e, *common, "--store", str(store), "--build"], args.timeout)
        if err:
            skipped[e] = f"index build failed: {err}"
        elif e not in OURS:
            (store / "done").write_text("")
        print(
            f"  {e}: index {'FAILED: ' + err if err else 'built'} in {time.perf_counter() - t:.0f} s",
            flush=True,
        )
    engines = [e for e in engines if e not in skipped]
    rounds: dict[str, list[dict]] = {e: [] for e in engines}
    loads = []
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        for e in engines:
            extra = ["--limit", str(args.rank_bm25_queries)] if e == "rank_bm25" else []
            store = work / f"peers{size}" / e
            res, err = _run(pythons[e], [e, *common, "--store", str(store), *extra], args.timeout)
            if err:
                skipped[e] = err
                continue
            rounds[e].append(res)
            print(f"  {size:,} round {r + 1} {e}: {json.dumps(res)}", flush=True)
    rows = {}
    for e, rs in rounds.items():
        if not rs:
            continue
        medians = [key for key in rs[0] if key not in ("recall@5_by_kind", "kernel")]
        row = {key: round(statistics.median(x[key] for x in rs), 4) for key in medians}
        row["recall@5_by_kind"] = rs[0]["recall@5_by_kind"]
        if "kernel" in rs[0]:
            row["kernel"] = all(x["kernel"] for x in rs)
        row["rounds"] = len(rs)
        rows[e] = row
    add_ratios(rows)
    return {
        "documents": len(world.documents),
        "corpus_mb": round((world.path / "corpus.jsonl").stat().st_size / 1e6, 1),
        "queries": args.queries,
        "load_average_per_round": [round(x, 2) for x in loads],
        "engines": rows,
        "skipped": skipped,
    }


def add_ratios(rows: dict[str, dict]) -> None:
    """Each engine's q/s divided by bm25s + numba's in the same run: by wall clock and by CPU time of the
    worker (on a loaded machine the wall clock also counts waiting for a core)."""
    ref = rows.get("bm25s-numba")
    for row in rows.values() if ref else ():
        for mode in ("single", "batch16"):
            row[f"{mode}_vs_bm25s_numba"] = round(row[f"{mode}_qps"] / ref[f"{mode}_qps"], 2)
            row[f"{mode}_vs_bm25s_numba_cpu"] = round(row[f"{mode}_qps_cpu"] / ref[f"{mode}_qps_cpu"], 2)


def table(size: int, res: dict) -> str:
    head = (
        "| engine | single q/s | batch-16 q/s | × bm25s-numba (single / batch) | × by CPU time | recall@5 | "
        "peak RSS MB | load s | first query ms |"
    )
    lines = [f"{size:,} documents, load average {res['load_average_per_round']}", head, "|" + " --- |" * 9]
    for e, r in res["engines"].items():
        ratio = f"{r.get('single_vs_bm25s_numba', '–')} / {r.get('batch16_vs_bm25s_numba', '–')}"
        cpu = f"{r.get('single_vs_bm25s_numba_cpu', '–')} / {r.get('batch16_vs_bm25s_numba_cpu', '–')}"
        lines.append(
            f"| {e} | {r['single_qps']:,.0f} | {r['batch16_qps']:,.0f} | {ratio} | {cpu} | {r['recall@5']} | "
            f"{r['peak_rss_mb']:,.0f} | {r['load_s']} | {r['first_query_ms']} |"
        )
    lines += [f"skipped {e}: {why}" for e, why in res["skipped"].items()]
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        ap = argparse.ArgumentParser()
        ap.add_argument("engine", choices=ENGINES)
        ap.add_argument("--world", required=True)
        ap.add_argument("--queries", required=True)
        ap.add_argument("--store", required=True)
        ap.add_argument("--build", action="store_true")
        ap.add_argument("--limit", type=int, default=0)
        worker(ap.parse_args(sys.argv[2:]))
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    ap.add_argument(
        "--peer-python", help="interpreter of a venv with bm25s, numba, PyStemmer, tantivy, rank_bm25"
    )
    ap.add_argument("--pyserini-python", help="interpreter of a venv with pyserini (needs Java 21)")
    ap.add_argument("--rank-bm25-queries", type=int, default=100, help="rank_bm25 runs on this many queries")
    ap.add_argument("--work", default="/tmp/searchgym-bench")
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--out", default="bench/results/search.json")
    args = ap.parse_args()
    results = {
        "k": K,
        "batch": BATCH,
        "rounds": args.rounds,
        "load_average_at_start": os.getloadavg(),
        "sizes": {},
    }
    for size in args.sizes:
        res = bench_size(args, size)
        results["sizes"][str(size)] = res
        print(table(size, res), flush=True)
    results["load_average_at_end"] = os.getloadavg()  # the machine is shared: read figures against this
    from searchgym.io import write_json

    write_json(Path(args.out), results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
