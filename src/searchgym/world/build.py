"""The world build pipeline: schema → graph → corpus (→ noise, → LLM rewrite) → verification → world directory.

Everything is written into a temporary sibling directory and moved into place with one rename, so a failed build
never leaves a half-written world. Hashed files carry no timestamps: the same config gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from searchgym.config import YamlConfig
from searchgym.io import atomic_dir, atomic_write_text, read_jsonl, write_jsonl
from searchgym.world.corpus import ArticleWriter
from searchgym.world.generate import Graph, generate_graph
from searchgym.world.noise import NoiseConfig, plan_noise
from searchgym.world.rewrite import RewriteConfig, missing_facts, rewrite_documents
from searchgym.world.schema import load_schema
from searchgym.world.store import World, write_manifest
from searchgym.world.verify import Retriever, verify_world


@dataclass
class WorldConfig(YamlConfig):
    seed: int = 0
    num_entities: int = 3600  # the paper's world has about 3,600 entities
    schema: str | None = None  # path to a schema YAML; None = the built-in default schema
    zipf_exponent: float = 1.0  # popularity of the k-th most popular entity of a type ∝ 1/k^s
    max_degree: int = 50  # cap on edges of one relation at one other-end entity (raised if infeasible)
    type_mix: dict[str, float] = field(default_factory=dict)  # entity type -> weight, overrides the schema
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    rewrite: RewriteConfig = field(default_factory=RewriteConfig)
    verify: bool = True
    verify_backend: str = "bm25s"
    verify_top_k: int = 5


def _entities(g: Graph) -> Any:
    for i in range(len(g.ids)):
        yield {"id": g.ids[i], "type": g.type_of(i), "name": g.names[i], "attrs": g.entity_attrs(i)}


def _edges(g: Graph, verified: dict[int, tuple[bool, list[str]]] | None = None) -> Any:
    rels = [r.name for r in g.schema.relations]
    for e, (r, s, t) in enumerate(zip(g.rel.tolist(), g.src.tolist(), g.tgt.tolist(), strict=True)):
        ok, failures = (verified or {}).get(e, (False, []))
        yield {
            "id": e,
            "relation": rels[r],
            "source": g.ids[s],
            "target": g.ids[t],
            "verified": ok,
            "failures": failures,
        }


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
    """A rich progress bar over the named build stages (quiet when progress=False)."""

    def __init__(self, progress: bool, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
        )
        self.enabled = progress
        if progress:
            self.bar.start()
        self.task = self.bar.add_task("world build", total=total)

    def __call__(self, what: str) -> None:
        self.bar.update(self.task, advance=1, description=f"world build: {what}"[:32])

    def track(self, rows: Iterator[Any], total: int, what: str) -> Iterator[Any]:
        sub = self.bar.add_task(f"  {what}", total=total)
        for k, row in enumerate(rows, 1):
            yield row
            if k % 2000 == 0 or k == total:
                self.bar.update(sub, completed=k)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def build_world(
    cfg: WorldConfig,
    out_dir: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    engine_for: Callable[[Path], Retriever] | None = None,
) -> World:
    """Build a world directory at `out_dir` and return it loaded. Refuses an existing `out_dir` unless overwrite.

    `engine_for(directory)` returns a search engine over `directory/corpus.jsonl` (the same engine the agents will
    train with); verification queries it. `searchgym.pipeline.build_world` wires in the index's engines."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:
        raise FileExistsError(f"{out_dir} already exists; pass --overwrite (overwrite=True) to replace it")
    schema = load_schema(cfg.schema)
    if cfg.num_entities < len(schema.entity_types):
        raise ValueError(
            f"num_entities={cfg.num_entities} is below the {len(schema.entity_types)} entity types"
        )
    if cfg.verify and engine_for is None:
        raise ValueError(
            "verification needs a search engine over the new corpus: call searchgym.pipeline.build_world, or pass "
            "engine_for=..., or set verify: false"
        )
    steps = _Steps(progress, total=len(schema.entity_types) + len(schema.relations) + 5)
    try:
        with atomic_dir(out_dir, overwrite=overwrite) as tmp:
            graph = generate_graph(
                schema,
                cfg.seed,
                cfg.num_entities,
                cfg.zipf_exponent,
                cfg.max_degree,
                cfg.type_mix or None,
                steps,
            )
            steps("writing entities and edges")
            atomic_write_text(tmp / "schema.yaml", schema.text)
            write_jsonl(tmp / "entities.jsonl", steps.track(_entities(graph), len(graph.ids), "entities"))
            write_jsonl(tmp / "edges.jsonl", steps.track(_edges(graph), len(graph.rel), "edges"))
            steps("writing articles")
            writer = ArticleWriter(graph, cfg.seed)
            noise = plan_noise(writer, cfg.noise, cfg.seed)
            write_jsonl(tmp / "facts.jsonl", steps.track(writer.facts(), len(graph.rel), "facts"))
            docs = _chain(writer.articles(noise.extra), noise.distractors)
            n_docs = write_jsonl(tmp / "corpus.jsonl", steps.track(docs, len(graph.ids), "articles"))
            write_jsonl(tmp / "noise.jsonl", noise.records)
            info: dict[str, Any] = {
                "seed": cfg.seed,
                "config": cfg.to_dict(),
                "schema": schema.name,
                "verification": None,
            }
            steps("rewriting articles" if cfg.rewrite.endpoint else "no rewrite")
            if cfg.rewrite.endpoint:
                info["rewrite"] = _rewrite(tmp, cfg.rewrite)
            kinds = [r["kind"] for r in noise.records]
            info["counts"] = _counts(graph, n_docs, {k: kinds.count(k) for k in ("conflict", "distractor")})
            write_manifest(tmp, info)
            steps("verifying edges" if cfg.verify else "no verification")
            if cfg.verify and engine_for is not None:  # checked above
                info["verification"] = _verify(tmp, cfg, graph, engine_for(tmp), progress)
                write_manifest(tmp, info)
            steps("done")
    finally:
        steps.close()
    return World.load(out_dir)


def _chain(*iterables: Any) -> Any:
    for it in iterables:
        yield from it


def _rewrite(tmp: Path, cfg: RewriteConfig) -> dict[str, Any]:
    facts = list(read_jsonl(tmp / "facts.jsonl"))
    keep: dict[str, list[str]] = {}
    for f in facts:
        keep.setdefault(f["doc"], []).append(f["sentence"])
    docs = list(rewrite_documents(read_jsonl(tmp / "corpus.jsonl"), keep, cfg))
    write_jsonl(tmp / "corpus.jsonl", docs)
    lost = missing_facts(docs, facts)
    return {"documents": len(docs), "facts_missing": len(lost), "missing_edges": lost[:1000]}


def _verify(tmp: Path, cfg: WorldConfig, graph: Graph, engine: Retriever, progress: bool) -> dict[str, Any]:
    world = World.load(tmp)
    try:
        report = verify_world(world, engine, top_k=cfg.verify_top_k, progress=progress)
    finally:
        close = getattr(engine, "close", None)
        if close is not None:
            close()
    failures = {int(e): list(f) for e, f in report.edge_failures.items()}
    verified = {e: (not failures.get(e), failures.get(e, [])) for e in range(len(graph.rel))}
    write_jsonl(tmp / "edges.jsonl", _edges(graph, verified))
    return report.summary()
