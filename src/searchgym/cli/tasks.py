"""`searchgym tasks build | export | show | oracle`. Errors are `SearchGymError`s: the root group prints them as
one line and exits 2."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import typer

tasks_app = typer.Typer(
    help="Multi-hop tasks on a verified world: build, export, inspect, oracle.", no_args_is_help=True
)


@tasks_app.command("build")
def build(
    world: Path = typer.Argument(..., help="world directory (built by `searchgym world build`)"),
    name: str = typer.Option("default", help="task set name: written to WORLD/tasks/<name>/"),
    config: Path = typer.Option(None, help="TaskConfig YAML (default: built-in defaults)"),
    set_: list[str] = typer.Option([], "--set", help="config override, e.g. --set chain_per_hops=50"),
    overwrite: bool = typer.Option(False, help="replace an existing task set of that name"),
) -> None:
    """Synthesize tasks on WORLD's verified graph and save them with a manifest."""
    from searchgym.errors import InputError
    from searchgym.io import check_replaceable
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.paraphrase import ParaphraseError
    from searchgym.tasks.store import save_tasks, task_set_dir
    from searchgym.tasks.synth import synthesize
    from searchgym.world.store import World

    cfg = (TaskConfig.from_yaml(config) if config else TaskConfig()).override(set_)
    cfg.validate()  # every range is checked before the world is loaded
    target = task_set_dir(world, name)  # refuses a name that is not one safe path component
    if target.exists() and not overwrite:
        raise InputError(f"{target} exists; pass --overwrite to replace it")
    check_replaceable(target, "manifest.json")
    w = World.load(world)
    try:
        result = synthesize(w, cfg, progress=True)
    except ParaphraseError as e:
        raise InputError(
            f"{e}; start the server, fix paraphrase.base_url, or --set paraphrase.enabled=false"
        ) from e
    out = save_tasks(result.tasks, world, name, cfg.to_dict(), result.report(), overwrite=overwrite)
    _print_synthesis(result, out)


@tasks_app.command("export")
def export(
    taskset: Path = typer.Argument(..., help="task set directory (WORLD/tasks/<name>)"),
    format: str = typer.Option(
        ...,
        "--format",
        help="jsonl | parquet | hf | verl | searchr1 | asearcher | trl (docs/integrations.md)",
    ),
    out: Path = typer.Option(..., help="output file (directory for hf)"),
    split: str = typer.Option(None, help="only this split (train | dev | test)"),
    protocol: str = typer.Option(
        None,
        help="env preset of the prompt: tag | json | searchr1 (default: verl tag, searchr1 searchr1, trl json)",
    ),
    data_source: str = typer.Option(
        None, "--data-source", help="the rows' data_source (default: verl searchgym, searchr1 nq)"
    ),
    agent: str = typer.Option(
        "searchgym", help="verl: agent_name of the rows: searchgym (our agent loop) | tool_agent (verl's)"
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="env override for the prompt and agent loop, e.g. max_turns=16"
    ),
) -> None:
    """Write a task set in a trainer's format and read it back to check it."""
    from searchgym.errors import InputError
    from searchgym.integrations.export import ExportOptions, export_format, export_tasks, read_back
    from searchgym.io import check_replaceable
    from searchgym.tasks.store import load_manifest, load_tasks, world_of

    spec = export_format(format)
    world = str(world_of(taskset).resolve())
    opts = spec.resolve(ExportOptions(protocol, data_source, world, agent, tuple(set_)))
    if opts.protocol is not None:
        opts.env_config(opts.protocol)  # every option is checked before the task set is read
    elif set_:
        raise InputError(f"--set: the {format} export carries no prompt or env config; leave the option out")
    if format == "hf":  # a dataset directory replaces OUT: only an earlier export may be replaced
        check_replaceable(out, "dataset_info.json")
    tasks = load_tasks(taskset)
    manifest = load_manifest(taskset)
    splits = sorted({*manifest.get("config", {}).get("splits", {}), *(t.split for t in tasks)})
    if split is not None and split not in splits:
        raise InputError(f"--split {split!r}: {taskset} has the splits {splits}")
    tasks = [t for t in tasks if split is None or t.split == split]
    export_tasks(tasks, format, out, opts)
    typer.echo(f"wrote {len(read_back(format, out))} rows ({format}) to {out}")


@tasks_app.command("show")
def show(
    taskset: Path = typer.Argument(..., help="task set directory (WORLD/tasks/<name>)"),
    task_id: str = typer.Argument(..., help="task id (see tasks.jsonl)"),
) -> None:
    """Question, answer and the evidence chain with the article passages stating each fact."""
    from searchgym.errors import InputError
    from searchgym.tasks.store import load_tasks, world_of
    from searchgym.world.store import World

    tasks = {t.id: t for t in load_tasks(taskset)}
    if task_id not in tasks:
        raise InputError(f"no task {task_id!r} in {taskset}; ids look like {next(iter(tasks), 'chain-…')}")
    t = tasks[task_id]
    w = World.load(world_of(taskset))
    typer.echo(f"{t.id}  type={t.type} hops={t.hops} level={t.level} split={t.split}")
    typer.echo(f"Q: {t.question}")
    typer.echo(f"A: {t.answer}" + (f"   (also: {', '.join(t.aliases)})" if t.aliases else ""))
    typer.echo("Evidence:")
    for i, s in enumerate(t.evidence, 1):
        name = w.entities[s.entity].name
        if s.edge is not None:
            passage = w.facts[s.edge].sentence
            typer.echo(f'  {i}. {name} [{s.relation}] {s.url}\n     "{passage}"')
        else:
            ent = w.entities[s.entity]
            spec = w.schema.entity_type(ent.type).attribute(s.attribute)
            text = spec.format(ent.attrs[s.attribute])
            line = next((ln.strip() for ln in w.doc_of(s.entity).text.splitlines() if text in ln), "")
            typer.echo(f'  {i}. {name} [{s.attribute} = {text}] {s.url}\n     "{line}"')
    typer.echo(f"Form: {json.dumps(t.meta.get('form'))}")


@tasks_app.command("oracle")
def oracle(
    taskset: Path = typer.Argument(..., help="task set directory (WORLD/tasks/<name>)"),
    backend: str = typer.Option(None, help="search backend (default: the index default, bm25s)"),
    out: Path = typer.Option(None, help="transcripts file (default: TASKSET/transcripts.jsonl)"),
    limit: int = typer.Option(0, help="solve only the first N tasks (0 = all)"),
    max_turns: int = typer.Option(32, help="env turn budget for the oracle"),
) -> None:
    """Solve every task through the real engine and env; print success per type and level."""
    from rich.console import Console
    from rich.table import Table

    from searchgym.agents.oracle import Oracle, oracle_env_config, save_transcripts
    from searchgym.errors import InputError
    from searchgym.index.build import load_engine
    from searchgym.io import write_json
    from searchgym.tasks.store import load_tasks, resolve, world_of
    from searchgym.world.store import World

    if limit < 0:
        raise InputError(f"--limit {limit}: give a number of tasks >= 1, or 0 for all")
    if max_turns < 1:
        raise InputError(f"--max-turns {max_turns}: the oracle needs at least 1 turn")
    tasks = load_tasks(taskset)
    world_dir = world_of(taskset)
    engine = load_engine(world_dir, backend)
    tasks = tasks[:limit] if limit else tasks
    result = Oracle(World.load(world_dir), engine, oracle_env_config(max_turns=max_turns)).run(tasks, True)
    out = out or resolve(taskset) / "transcripts.jsonl"
    save_transcripts(out, result)
    write_json(out.with_suffix(".summary.json"), {"table": result.table(), "unsolved": result.unsolved})
    table = Table(title=f"oracle on {len(tasks)} tasks")
    for col in ("group", "tasks", "success"):
        table.add_column(col)
    for key, row in result.table().items():
        table.add_row(key, str(row["n"]), f"{row['success']:.1%}")
    Console().print(table)
    for tid, reason in list(result.unsolved.items())[:20]:
        typer.echo(f"unsolved {tid}: {reason}")
    typer.echo(f"transcripts: {out}")


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main `searchgym` app."""
    app.add_typer(tasks_app, name="tasks")


WIDTH = 132  # tables are printed at least this wide, so relation names and reasons are never cut off


def _print_synthesis(result: Any, out: Path) -> None:
    """What `tasks build` prints: tasks per type and level, rejected drafts by reason, split leakage."""
    from rich.console import Console
    from rich.table import Table

    tasks, console = result.tasks, Console(width=max(Console().width, WIDTH))
    table = Table("type", "level", "count", title=f"{len(tasks)} tasks in {out}")
    for key, n in sorted(Counter(f"{t.type}/{t.level}" for t in tasks).items()):
        table.add_row(*key.split("/"), str(n))
    console.print(table)
    if result.rejected:
        reasons = list(result.rejected)
        rej = Table(
            "relation",
            *reasons,
            title="Rejected drafts per relation and reason (a draft counts once for every relation it uses)",
        )
        rels = sorted({r for per_rel in result.rejected.values() for r in per_rel})
        for rel in rels:
            rej.add_row(rel, *(str(result.rejected[x].get(rel, 0)) for x in reasons))
        drafts = result.drafts_rejected
        rej.add_row("drafts", *(str(drafts.get(x, sum(result.rejected[x].values()))) for x in reasons))
        console.print(rej)
    split = result.split
    dropped = (
        f" ({split['dropped']} tasks dropped to keep splits entity-disjoint)"
        if split["mode"] == "entity"
        else ""
    )
    leak = Table(
        "split",
        "tasks",
        "entities in train",
        "starts in train",
        "answers in train",
        "paths inside a train task",
        title=f"Split mode {split['mode']!r}: what held-out tasks share with train{dropped}",
    )
    for split_name, row in split["leakage"].items():
        leak.add_row(
            split_name,
            str(row["tasks"]),
            *(f"{row[k]:.1%}" for k in ("entities_in_train", "starts_in_train", "answers_in_train")),
            f"{row['paths_inside_a_train_task']:.1%}",
        )
    console.print(leak)
    if result.shortfall:
        typer.echo(f"warning: fewer tasks than requested (slice -> missing): {result.shortfall}", err=True)
