"""`searchgym world build | info | show | schema | export-corpus`. Errors are `SearchGymError`s: the root group
prints them as one line and exits 2."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

world_app = typer.Typer(help="Build and inspect worlds (knowledge graph + corpus).", no_args_is_help=True)


@world_app.command()
def build(
    out: Path = typer.Argument(..., help="world directory to create"),
    config: Path | None = typer.Option(None, "--config", "-c", help="WorldConfig YAML"),
    seed: int | None = typer.Option(None, help="override config seed"),
    entities: int | None = typer.Option(None, help="override config num_entities"),
    overwrite: bool = typer.Option(False, help="replace an existing world directory"),
    no_verify: bool = typer.Option(False, "--no-verify", help="skip edge verification"),
    set_: list[str] = typer.Option([], "--set", help="dotted override, e.g. noise.conflict_rate=0.05"),
) -> None:
    """Build a world directory from a seed and a schema."""
    from searchgym.io import check_replaceable
    from searchgym.pipeline import build_world
    from searchgym.world.build import WorldConfig

    cfg = WorldConfig.from_yaml(config) if config else WorldConfig()
    flags = {"seed": seed, "num_entities": entities, "verify": False if no_verify else None}
    cfg = cfg.override(list(set_)).override({k: v for k, v in flags.items() if v is not None})
    cfg.validate()  # every range is checked before any work
    if overwrite:
        check_replaceable(out, "manifest.json")  # --overwrite replaces a world, never another directory
    world = build_world(cfg, out, overwrite=overwrite, progress=True)
    _print_build(out, world.manifest)


def _print_build(out: Path, manifest: dict) -> None:
    """What `world build` prints: counts, then per relation the edges verification dropped and why, and for
    LLM-written worlds the facts the writer lost and the tokens used."""
    from rich.console import Console
    from rich.table import Table

    c = manifest["counts"]
    typer.echo(f"built {out}: {c['entities']:,} entities, {c['edges']:,} edges, {c['documents']:,} documents")
    v = manifest.get("verification")
    if not v:
        typer.echo("not verified (--no-verify): tasks cannot be built on this world")
        return
    checks = ("grounded", "retrievable", "contradicted")
    table = Table(
        "relation", "edges", "verified", "dropped", *(f"not {x}" for x in checks), title="Verification"
    )
    for rel, row in v.items():
        dropped = row["total"] - row["verified"]
        table.add_row(
            rel,
            f"{row['total']:,}",
            f"{row['verified']:,}",
            f"{dropped:,}",
            *(f"{row['failures'][x]:,}" for x in checks),
        )
    total, ok = sum(r["total"] for r in v.values()), sum(r["verified"] for r in v.values())
    table.add_row(
        "all",
        f"{total:,}",
        f"{ok:,}",
        f"{total - ok:,}",
        *(f"{sum(r['failures'][x] for r in v.values()):,}" for x in checks),
    )
    console = Console(width=max(Console().width, 132))  # never cut a relation name off
    console.print(table)
    llm = manifest.get("llm")
    if llm:
        t = llm["tokens"]
        console.print(
            f"LLM writer {llm['model']!r}: {llm['articles']:,} articles ({llm['regenerated']:,} regenerated), "
            f"{t['prompt_tokens']:,} prompt + {t['completion_tokens']:,} completion tokens, "
            f"{llm['facts_lost']:,} facts lost: "
            + (", ".join(f"{r} {f['lost']}" for r, f in llm["facts"].items() if f["lost"]) or "none")
        )


@world_app.command()
def info(world: Path = typer.Argument(..., help="world directory")) -> None:
    """Counts, degree and relation histograms, verification summary."""
    from rich.console import Console
    from rich.table import Table

    from searchgym.io import read_jsonl
    from searchgym.world.store import check_files, read_manifest

    manifest = read_manifest(world)
    check_files(world, manifest)
    console = Console()
    c = manifest["counts"]
    console.print(
        f"[bold]{world}[/]  seed {manifest['seed']}  schema {manifest['schema']}  "
        f"content {manifest['content_hash'][:16]}"
    )
    console.print(
        f"{c['entities']:,} entities · {c['edges']:,} edges · {c['documents']:,} documents · noise {c['noise']}"
    )

    types = Table("entity type", "count", title="Entities")
    for t, n in c["entity_types"].items():
        types.add_row(t, f"{n:,}")
    console.print(types)

    degree: Counter[str] = Counter()
    verified: Counter[str] = Counter()
    failures: dict[str, Counter[str]] = {}
    for e in read_jsonl(world / "edges.jsonl"):
        degree[e["source"]] += 1
        degree[e["target"]] += 1
        verified[e["relation"]] += bool(e["verified"])
        failures.setdefault(e["relation"], Counter()).update(e["failures"])
    rels = Table("relation", "edges", "verified", "failures", title="Relations")
    for r, n in c["relations"].items():
        fails = ", ".join(f"{k} {v}" for k, v in sorted(failures.get(r, Counter()).items())) or "-"
        rels.add_row(r, f"{n:,}", f"{verified[r]:,}", fails)
    console.print(rels)

    bins = [(0, 0), (1, 1), (2, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 128), (129, 10**12)]
    hist = Counter()
    for d in list(degree.values()) + [0] * (c["entities"] - len(degree)):
        hist[next(b for b in bins if b[0] <= d <= b[1])] += 1
    deg = Table("degree", "entities", "", title="Degree histogram (edges touching an entity)")
    top = max(hist.values(), default=1)
    for lo, hi in bins:
        label = str(lo) if lo == hi else (f"{lo}-{hi}" if hi < 10**12 else f">={lo}")
        deg.add_row(label, f"{hist[(lo, hi)]:,}", "█" * round(30 * hist[(lo, hi)] / top))
    console.print(deg)
    if degree:
        console.print(f"max degree {max(degree.values())}")
    v = manifest.get("verification")
    if v:
        total, ok = sum(r["total"] for r in v.values()), sum(r["verified"] for r in v.values())
        console.print(
            f"verification: {ok:,} of {total:,} edges verified ({ok / max(total, 1):.1%}); "
            "failures per relation in the table above"
        )
    else:
        console.print("not verified (built with --no-verify)")
    llm = manifest.get("llm")
    if llm:
        console.print(f"LLM-written ({llm['model']!r}): {llm['facts_lost']:,} facts lost by the writer")


@world_app.command()
def show(
    world: Path = typer.Argument(..., help="world directory"),
    entity: str = typer.Argument(..., help="entity id, name or article URL"),
) -> None:
    """Show one entity: attributes, edges and its article."""
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table

    from searchgym.errors import InputError
    from searchgym.world.schema import parse_schema
    from searchgym.world.store import check_files, find_entity, read_manifest

    check_files(world, read_manifest(world))
    ent, doc, edges, names = find_entity(world, entity)
    if doc is None:
        raise InputError(
            f"no entity, name or URL {entity!r} in {world}; give an id (e.g. person/000001), a name or a URL"
        )
    console = Console()
    if ent is None:
        console.print(f"[bold]{doc.title}[/]  ({doc.id}, not an entity article)  {doc.url}")
    else:
        schema = parse_schema((world / "schema.yaml").read_text())
        console.print(f"[bold]{ent.name}[/]  ({ent.id}, {ent.type})  {doc.url}")
        attrs = Table("attribute", "value")
        for k, v in ent.attrs.items():
            attrs.add_row(k, str(v))
        console.print(attrs)
        table = Table("edge", "relation", "source", "target", "holder", "verified", "failures")
        for e in edges:
            holder, _ = schema.relation(e.relation).orient(e.source, e.target)
            table.add_row(
                str(e.id),
                e.relation,
                names[e.source],
                names[e.target],
                "this" if holder == ent.id else "other",
                str(e.verified),
                ",".join(e.failures),
            )
        console.print(table)
    console.print(Panel(doc.text, title=doc.title))


@world_app.command()
def schema(
    path: Path | None = typer.Argument(None, help="schema YAML to check (default: the built-in schema)"),
    dump: bool = typer.Option(False, help="print the schema's YAML (start a custom schema from the default)"),
) -> None:
    """Validate a schema and summarise its entity types and relations."""
    from rich.console import Console
    from rich.table import Table

    from searchgym.world.schema import load_schema

    s = load_schema(path)
    if dump:
        typer.echo(s.text, nl=False)
        return
    console = Console()
    types = Table("entity type", "name style", "weight", "attributes", title=f"Schema {s.name!r}")
    for t in s.entity_types:
        types.add_row(
            t.name, t.name_style, f"{t.weight:g}", ", ".join(f"{a.name} ({a.kind})" for a in t.attributes)
        )
    console.print(types)
    rels = Table("relation", "source → target", "cardinality", "holder", "acyclic", "constraints")
    for r in s.relations:
        constraints = "; ".join(c.text for c in r.constraints) or "-"
        rels.add_row(r.name, f"{r.source} → {r.target}", r.cardinality, r.holder, str(r.acyclic), constraints)
    console.print(rels)


@world_app.command("export-corpus")
def export_corpus(
    world: Path = typer.Argument(..., help="world directory"),
    out: Path = typer.Argument(..., help="output JSON Lines file (the corpus)"),
    pages: Path = typer.Option(None, help="also write ASearcher's url-keyed pages file (--pages_path) here"),
) -> None:
    """Export the corpus for Search-R1's index builders: {"id": row number, "contents": "<title>\\n<text>", "url",
    "title", "doc_id", "entity"}; with --pages, the {"url", "contents", ...} pages file of ASearcher's access tool."""
    from searchgym.integrations.export import export_corpus as write_corpus

    n = write_corpus(world, out, pages)
    typer.echo(f"wrote {n:,} documents to {out}" + (f" and {n:,} pages to {pages}" if pages else ""))


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main `searchgym` app."""
    app.add_typer(world_app, name="world")
