"""`searchgym train`, `searchgym sft`, `searchgym demo`."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the main `searchgym` app."""
    app.command()(train)
    app.command()(sft)
    app.command()(demo)


def train(
    config: str = typer.Option(
        ..., "--config", "-c", help="YAML file or preset name (cpu-tiny, qwen2.5-3b-grpo, qwen2.5-7b-trac)"
    ),
    overrides: list[str] = typer.Argument(None, help="key=value overrides, e.g. grpo.max_steps=20"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last complete checkpoint"),
) -> None:
    """Train a search agent with GRPO or TRAC-GRPO on TRL (SearchGym's multi-turn rollout as rollout_func)."""
    from searchgym.trainer.config import TrainConfig
    from searchgym.trainer.presets import resolve_preset

    # every section is typed: a typo or a bad value stops here, before torch or TRL is imported
    cfg = TrainConfig.from_yaml(resolve_preset(config)).override(list(overrides or []))
    cfg.validate()  # estimator and teacher, TRL's own checks: before any world, index or weights are loaded
    from searchgym.trainer.grpo import train as run_train

    run = run_train(cfg, resume=resume)
    typer.echo(f"done: step {run.trainer.state.global_step}; model in {run.output_dir / 'final'}")


def sft(
    world: Path = typer.Option(..., "--world", help="world directory"),
    transcripts: Path = typer.Option(..., "--transcripts", help="oracle transcripts.jsonl"),
    out: Path = typer.Option(..., "--out", help="output model directory (replaced atomically)"),
    tasks: Path = typer.Option(None, "--tasks", help="task set the transcripts come from (recorded only)"),
    model_size: str = typer.Option("student", "--model-size", help="tiny model preset: student | teacher"),
    steps: int = typer.Option(None, "--steps", help="optimizer steps (default: 300 student, 600 teacher)"),
    lr: float = typer.Option(None, "--lr", help="learning rate"),
    tokenizer: Path = typer.Option(
        None, "--tokenizer", help="reuse this tokenizer (student and teacher must share)"
    ),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Supervised warm-start of a tiny model on oracle transcripts (loss on the model's action tokens only)."""
    from searchgym.trainer.sft import SFTRunConfig, run_sft

    fields = {"model_size": model_size, "seed": seed, "max_steps": steps, "learning_rate": lr}
    if steps is None:
        fields["max_steps"] = 600 if model_size == "teacher" else 300
    cfg = SFTRunConfig.from_dict({k: v for k, v in fields.items() if v is not None}, where="sft")
    summary = run_sft(world, transcripts, out, cfg, tokenizer_dir=tokenizer)
    typer.echo(
        f"{out}: {summary['parameters']:,} parameters, {summary['transcripts']} transcripts, "
        f"loss {summary['first_loss']:.3f} -> {summary['final_loss']:.3f}"
    )


def demo(
    overrides: list[str] = typer.Argument(
        None,
        help="DemoConfig key=value overrides, e.g. rl_max_steps=50 num_entities=500 train.estimator=grpo",
    ),
    config: Path = typer.Option(
        None, "--config", "-c", help="DemoConfig YAML (e.g. a run's demo_config.yaml)"
    ),
    out: Path = typer.Option(None, "--out", help="run directory (default runs/demo)"),
    minutes: float = typer.Option(
        None,
        "--minutes",
        help="safety stop only (default 60): past it the running training stage stops and the report is "
        "marked INCOMPLETE; every stage otherwise runs its fixed step count",
    ),
    seed: int = typer.Option(None, "--seed", help="world, tasks and training seed (default 0)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="rebuild every stage even if it exists"),
    preset: str = typer.Option(
        "tiny",
        "--preset",
        help="tiny (tiny student / teacher, tag actions) | smollm2 (SmolLM2-135M-Instruct, JSON tool calls, "
        "LoRA; docs/training.md)",
    ),
) -> None:
    """The whole pipeline on CPU: world, index, tasks, SFT warm-start, eval, TRAC-GRPO, eval, report."""
    from searchgym.demo.pipeline import DemoConfig, run_demo
    from searchgym.demo.smollm2 import SmolDemoConfig, run_smollm2_demo

    presets = {"tiny": (DemoConfig, run_demo), "smollm2": (SmolDemoConfig, run_smollm2_demo)}
    if preset not in presets:
        raise typer.BadParameter(f"unknown demo preset {preset!r}; choose one of {', '.join(presets)}")
    kind, run = presets[preset]
    cfg = kind.from_yaml(config) if config else kind()
    flags = {"out": out, "minutes": minutes, "seed": seed}
    cfg = cfg.override([f"{k}={v}" for k, v in flags.items() if v is not None] + list(overrides or []))
    report = run(cfg, overwrite=overwrite)
    typer.echo(f"report: {report}")
