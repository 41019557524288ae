"""The world build pipeline: schema → graph → corpus (template or LLM writer, + noise) → verification → world dir.

Everything is written into a temporary sibling directory and moved into place with one rename, so a failed build
never leaves a half-written world. Each file is written once and hashed while it is written (edges.jsonl last,
with the verification result); hashed files carry no timestamps: the same config gives the same bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchgym.config import ConfigError, YamlConfig
from searchgym.hashcache import remember_written
from searchgym.io import atomic_dir
from searchgym.parallel import fork_map, shared, spans
from searchgym.world.corpus import ArticleWriter
from searchgym.world.generate import Graph, generate_graph
from searchgym.world.llm import LLMConfig, stray_claims, write_corpus
from searchgym.world.noise import NoiseConfig, plan_noise
from searchgym.world.rows import corpus_line, edge_line, fact_line
from searchgym.world.schema import load_schema
from searchgym.world.store import World, write_chunks, write_manifest, write_rows, write_text
from searchgym.world.verify import EdgeColumns, Retriever, VerificationReport, check_edges

WRITERS = ("template", "llm")
# how a build runs, not what it builds: left out of the manifest's config, so they never change a world's bytes
EXECUTION_ONLY = (
    "workers",
    "llm.concurrency",
    "llm.cache_dir",
    "llm.timeout_s",
    "llm.retries",
    "llm.api_key_env",
)
ARTICLES_PER_CHUNK = 4096  # entities per unit of article writing handed to a worker
MAX_ENTITIES = 10_000_000  # refused before any work; tested sizes are 1,000 - 1,000,000


@dataclass
class WorldConfig(YamlConfig):
    seed: int = 0
    num_entities: int = 3600  # the paper's world has about 3,600 entities
    schema: str | None = None  # path to a schema YAML; None = the built-in default schema
    zipf_exponent: float = 1.0  # popularity of the k-th most popular entity of a type ∝ 1/k^s
    max_degree: int = 50  # cap on edges of one relation at one other-end entity (raised if infeasible)
    type_mix: dict[str, float] = field(default_factory=dict)  # entity type -> weight, overrides the schema
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    writer: str = "template"  # "template" (fast, several phrasings per fact) | "llm" (the paper's writer)
    llm: LLMConfig = field(default_factory=LLMConfig)
    verify: bool = True
    verify_backend: str = "bm25s"
    verify_top_k: int = 5
    workers: int = 2  # processes writing articles and running retrieval checks (results do not depend on it)

    def validate(self) -> None:
        if self.writer not in WRITERS:
            raise ConfigError(f"writer={self.writer!r}: choose one of {list(WRITERS)}")
        if self.writer == "llm" and not self.llm.endpoint:
            raise ConfigError(
                "writer=llm needs llm.endpoint, e.g. --set llm.endpoint=http://127.0.0.1:8000/v1"
            )
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers}: must be at least 1")
        if not 1 <= self.num_entities <= MAX_ENTITIES:
            raise ConfigError(f"num_entities={self.num_entities}: must be 1 to {MAX_ENTITIES:,}")
        if not 0.0 <= self.zipf_exponent < float("inf"):
            raise ConfigError(f"zipf_exponent={self.zipf_exponent}: must be >= 0 (0 = uniform popularity)")
        for key in ("max_degree", "verify_top_k"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)}: must be at least 1")
        self.noise.validate()


def _entities(g: Graph) -> Iterator[dict[str, Any]]:
    for i in range(len(g.ids)):
        yield {"id": g.ids[i], "type": g.type_of(i), "name": g.names[i], "attrs": g.entity_attrs(i)}


def _edge_lines(g: Graph, failures: dict[int, list[str]] | None) -> Iterator[bytes]:
    rels, ids = [r.name for r in g.schema.relations], g.ids
    for a, b in spans(len(g.rel), 1 << 16):
        lines = []
        for e, r, s, t in zip(
            range(a, b), g.rel[a:b].tolist(), g.src[a:b].tolist(), g.tgt[a:b].tolist(), strict=True
        ):
            failed = failures[e] if failures is not None else []
            lines.append(edge_line(e, rels[r], ids[s], ids[t], failed, failures is not None and not failed))
        yield "".join(lines).encode("utf-8")


def _fact_lines(writer: ArticleWriter, facts: list[dict[str, Any]] | None) -> Iterator[bytes]:
    """facts.jsonl: the template sentences, or the sentences found in LLM-written text (`facts`)."""
    ids, holder = writer.g.ids, writer.holder.tolist()
    n = len(writer.rel_list)
    sentences = writer.sentences if facts is None else [f["sentence"] for f in facts]
    for a, b in spans(n, 1 << 16):
        yield "".join(fact_line(ids[holder[e]], e, sentences[e]) for e in range(a, b)).encode("utf-8")


def _article_span(span: tuple[int, int]) -> tuple[bytes, list[int]]:
    return shared()["writer"].encode_articles(span[0], span[1], shared()["extra"])


def _doc_lines(docs: list[dict[str, Any]]) -> bytes:
    return "".join(corpus_line(d["id"], d["url"], d["title"], d["text"], d["entity"]) for d in docs).encode()


def _counts(g: Graph, n_docs: int, n_noise: dict[str, int]) -> dict[str, Any]:
    per_rel = {r.name: 0 for r in g.schema.relations}
    for r, n in zip(*np.unique(g.rel, return_counts=True), strict=True):
        per_rel[g.schema.relations[int(r)].name] = int(n)
    return {
        "entities": len(g.ids),
        "entity_types": dict(g.counts),
        "edges": len(g.rel),
        "relations": per_rel,
        "documents": n_docs,
        "noise": n_noise,
    }


class _Steps:
    """A rich progress bar over the named build stages (quiet when progress=False), and stage timings."""

    def __init__(self, progress: bool, total: int, timings: dict[str, float] | None):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.enabled = progress
        if progress:
            self.bar.start()
        self.task = self.bar.add_task("world build", total=total)
        self.timings = timings if timings is not None else {}
        self.stage, self.t0 = "", time.perf_counter()

    def __call__(self, what: str, stage: str | None = None) -> None:
        """Advance the bar; `stage` starts a new timed stage (generation, writing, index, verification)."""
        if stage is not None:
            self._close_stage()
            self.stage, self.t0 = stage, time.perf_counter()
        self.bar.update(self.task, advance=1, description=f"world build: {what}"[:32])

    def _close_stage(self) -> None:
        if self.stage:
            self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.t0

    def sub(self, what: str, total: int) -> Callable[[int], None]:
        sub = self.bar.add_task(f"  {what}", total=total)
        return lambda n=1: self.bar.advance(sub, n)

    def track(self, rows: Iterator[Any], total: int, what: str) -> Iterator[Any]:
        sub = self.bar.add_task(f"  {what}", total=total)
        for k, row in enumerate(rows, 1):
            yield row
            if k % 2000 == 0 or k == total:
                self.bar.update(sub, completed=k)

    def close(self) -> None:
        self._close_stage()
        if self.enabled:
            self.bar.stop()


def build_world(
    cfg: WorldConfig,
    out_dir: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    engine_for: Callable[[Path], Retriever] | None = None,
    timings: dict[str, float] | None = None,
) -> World:
    """Build a world directory at `out_dir` and return it loaded. Refuses an existing `out_dir` unless overwrite.

    `engine_for(directory)` returns a search engine over `directory/corpus.jsonl` (the same engine the agents will
    train with); verification queries it. `searchgym.pipeline.build_world` wires in the index's engines.
    `timings`, if given, receives wall seconds per stage: generation, writing, index, verification."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite (overwrite=True) to replace it")
    cfg.validate()
    schema = load_schema(cfg.schema)
    if cfg.num_entities < len(schema.entity_types):
        raise ConfigError(
            f"num_entities={cfg.num_entities} is below the {len(schema.entity_types)} entity types"
        )
    if cfg.verify and engine_for is None:
        raise ValueError(
            "verification needs a search engine over the new corpus: call searchgym.pipeline.build_world, or pass "
            "engine_for=..., or set verify: false"
        )
    steps = _Steps(progress, len(schema.entity_types) + len(schema.relations) + 5, timings)
    try:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            steps("generating the graph", stage="generation")
            graph = generate_graph(
                schema,
                cfg.seed,
                cfg.num_entities,
                cfg.zipf_exponent,
                cfg.max_degree,
                cfg.type_mix or None,
                steps,
            )
            writer = ArticleWriter(graph, cfg.seed)
            noise = plan_noise(writer, cfg.noise, cfg.seed)
            steps("writing entities and articles", stage="writing")
            files = {"schema.yaml": write_text(tmp / "schema.yaml", schema.text)}
            n = len(graph.ids)
            _, files["entities.jsonl"] = write_rows(
                tmp / "entities.jsonl", steps.track(_entities(graph), n, "entities")
            )
            config = cfg.to_dict()
            for key in EXECUTION_ONLY:
                *parents, last = key.split(".")
                node = config
                for k in parents:
                    node = node[k]
                node.pop(last, None)
            info: dict[str, Any] = {"seed": cfg.seed, "config": config, "schema": schema.name}
            grounded = np.zeros(len(graph.rel), dtype=bool)
            if cfg.writer == "llm":
                grounded, facts, docs, records = _llm_corpus(writer, noise, cfg, steps, info)
                _, files["facts.jsonl"] = write_chunks(tmp / "facts.jsonl", _fact_lines(writer, facts))
                n_docs, files["corpus.jsonl"] = write_chunks(tmp / "corpus.jsonl", [_doc_lines(docs)])
            else:
                records = noise.records
                _, files["facts.jsonl"] = write_chunks(tmp / "facts.jsonl", _fact_lines(writer, None))
                advance = steps.sub("articles", n)
                chunks = spans(n, ARTICLES_PER_CHUNK)

                def articles() -> Iterator[bytes]:
                    work = fork_map(_article_span, chunks, cfg.workers, writer=writer, extra=noise.extra)
                    for (a, b), (data, found) in zip(chunks, work, strict=True):
                        grounded[found] = True
                        advance(b - a)
                        yield data
                    yield _doc_lines(noise.distractors)

                n_docs, files["corpus.jsonl"] = write_chunks(tmp / "corpus.jsonl", articles())
            _, files["noise.jsonl"] = write_rows(tmp / "noise.jsonl", records)
            kinds = [r["kind"] for r in records]
            info["counts"] = _counts(
                graph, n_docs, {k: kinds.count(k) for k in sorted({"conflict", "distractor", *kinds})}
            )
            failures = None
            info["verification"] = None
            if cfg.verify and engine_for is not None:  # checked above
                steps("building the index", stage="index")
                # hashed while written: the index build reuses the hash
                remember_written(tmp / "corpus.jsonl", files["corpus.jsonl"])
                engine = engine_for(tmp)
                steps("verifying edges", stage="verification")
                try:
                    report = _verify(graph, writer, grounded, records, engine, cfg, steps)
                finally:
                    close = getattr(engine, "close", None)
                    if close is not None:
                        close()
                failures = report.edge_failures
                info["verification"] = report.summary()
            else:
                steps("no verification")
            steps("writing edges and manifest", stage="writing")
            _, files["edges.jsonl"] = write_chunks(tmp / "edges.jsonl", _edge_lines(graph, failures))
            write_manifest(tmp, info, files)
            # hashed while written: a checked World.load need not hash them again
            for name, record in files.items():
                remember_written(tmp / name, record)
            steps("done")
    finally:
        steps.close()
    return World.load(out_dir, check=False)  # every file was hashed as it was written


def _llm_corpus(
    writer: ArticleWriter, noise: Any, cfg: WorldConfig, steps: _Steps, info: dict[str, Any]
) -> tuple[np.ndarray, list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Articles written by the LLM; facts are the sentences found stating each edge ("" when lost)."""
    if noise.extra:
        raise ConfigError(
            "noise.conflict_rate plants sentences into template articles; with writer=llm set it to 0 "
            "(LLM text brings its own contradictions, which verification catches)"
        )
    results, llm_info = write_corpus(writer, cfg.llm, steps.sub("LLM articles", len(writer.g.ids)))
    fresh = llm_info.pop("fresh_calls")
    if steps.enabled:
        steps.bar.console.print(f"LLM calls this run (the rest came from the cache): {fresh or 'none'}")
    info["llm"] = llm_info
    sentence: dict[int, str] = {}
    for r in results:
        sentence.update(r.facts)
    ids, holder = writer.g.ids, writer.holder.tolist()
    facts = [
        {"edge": e, "doc": ids[holder[e]], "sentence": sentence.get(e, "")}
        for e in range(len(writer.rel_list))
    ]
    grounded = np.array([bool(f["sentence"]) for f in facts], dtype=bool)
    docs = [r.doc for r in results] + list(noise.distractors)
    records = list(noise.records) + stray_claims(writer, [r.doc for r in results])
    return grounded, facts, docs, records


def _verify(
    graph: Graph,
    writer: ArticleWriter,
    grounded: np.ndarray,
    records: list[dict[str, Any]],
    engine: Retriever,
    cfg: WorldConfig,
    steps: _Steps,
) -> VerificationReport:
    from searchgym.world.claims import noise_claims

    cols = EdgeColumns(
        relation=graph.rel,
        holder=writer.holder,
        other=writer.other,
        names=graph.names,
        doc_ids=graph.ids,
        grounded=grounded,
    )
    rels = [r.name for r in graph.schema.relations]
    ids = graph.ids

    def edge_ends(e: int) -> tuple[str, str, str]:
        return rels[writer.rel_list[e]], ids[int(writer.holder[e])], ids[int(writer.other[e])]

    claims = noise_claims(graph.schema, records, edge_ends)
    index_of = {x: i for i, x in enumerate(ids)} if claims else {}
    advance = steps.sub("retrieval checks", len(graph.rel))
    return check_edges(cols, graph.schema, claims, index_of, engine, cfg.verify_top_k, cfg.workers, advance)
