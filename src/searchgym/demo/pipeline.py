"""`searchgym demo`: the whole pipeline on a 2-core CPU, end to end.

world -> index -> tasks -> oracle transcripts -> SFT warm-start (student, and a teacher trained longer)
-> held-out evaluation -> TRAC-GRPO through the curriculum -> held-out evaluation -> report (Markdown + PNG).
Every stage writes into `--out` and is skipped when its output already exists (unless `--overwrite`).
Every stage runs a fixed number of steps, so the same seed gives the same report numbers on a loaded or an idle
machine; `minutes` is only a safety stop (`demo.progress.SafetyStop`) that marks the report INCOMPLETE. Both
evaluations go through `eval.harness` and are written as eval directories (`eval_before/`, `eval_after/`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.config import EnvConfig
from searchgym.io import read_json, write_json
from searchgym.models.tiny import TinyModelConfig
from searchgym.rollout.episodes import RolloutConfig
from searchgym.tasks.config import TaskConfig
from searchgym.trainer.config import TrainConfig
from searchgym.trainer.presets import resolve_preset

DEMO_PRESET = "cpu-tiny"  # the demo's RL run is this training preset (trainer/presets_yaml/cpu-tiny.yaml)


def demo_train_config() -> TrainConfig:
    """The `cpu-tiny` preset: the demo's RL stage, its env (short prompt, no <think>, query-aware snippets) and its
    rollout budget. One home: `searchgym train --config cpu-tiny` trains exactly what the demo trains."""
    return TrainConfig.from_yaml(resolve_preset(DEMO_PRESET))


def demo_tasks() -> TaskConfig:
    return TaskConfig(
        max_hops=2,
        chain_per_hops=200,
        obfuscated=0,
        intersection=0,
        comparison=0,
        splits={"train": 0.8, "dev": 0.0, "test": 0.2},
    )


@dataclass
class DemoConfig(YamlConfig):
    """Every section is typed (tasks: TaskConfig, student / teacher: TinyModelConfig, train: TrainConfig), so a
    typo such as `train.env.max_turnz=3` is refused before a world, an index or weights are built."""

    out: str = "runs/demo"
    # safety stop only: past it the running training stage stops and the report says INCOMPLETE in its first
    # line. The margin is for a busy machine.
    minutes: float = 60.0
    seed: int = 0  # world, tasks (tasks.seed is set from it) and training seed
    threads: int = 1  # torch threads: tiny models are latency-bound, extra threads mostly contend
    num_entities: int = 300
    tasks: TaskConfig = field(default_factory=demo_tasks)
    vocab_size: int = 4096  # large enough that most names are single tokens: copying them is then easy
    student: TinyModelConfig = field(default_factory=lambda: TinyModelConfig.preset("demo-student"))
    teacher: TinyModelConfig = field(default_factory=lambda: TinyModelConfig.preset("demo-teacher"))
    student_sft_steps: int = 500
    teacher_sft_steps: int = 300
    # The teacher continues the student's SFT for teacher_sft_steps more steps (same size, trained longer): a
    # separately trained larger model (`teacher` shape, teacher_from_student=false) does not fit the CPU budget.
    teacher_from_student: bool = True
    # measured: 1e-2 left the student at 2.5 % held-out success (RL had no signal) — see docs/training.md
    sft_lr: float = 3e-3
    teacher_lr: float = 2e-3  # continuing from the student: a smaller step
    sft_batch_size: int = 8
    eval_tasks: int = 80
    eval_batch_size: int = (
        64  # episodes generated together in the evaluations (fixed: batching moves the floats)
    )
    # share of the train tasks whose oracle transcripts the SFT sees; with < 1 RL trains only on the others (task
    # set "demo-rl"), so RL cannot just replay what SFT memorised. 1.0 = SFT and RL share all train tasks.
    sft_task_share: float = 1.0
    # renamed copies of every oracle transcript in the SFT mix (demo/rename.py): names must be copied, not recalled
    sft_renamed_copies: int = 0
    # copy warm-up (demo/copywarm.py), before the student's SFT; 0 steps = none. copy_warmup_rows: spans (random
    # runs of name words, copied into a search) | questions (a question's name redrawn, copied into the query).
    # lr: on the span task (own loop, 8 words) copy accuracy reached 1.0 after 100 steps at 1e-3, 0.09 at 3e-3.
    copy_warmup_steps: int = 0
    copy_warmup_batch_size: int = 32
    copy_warmup_rows: str = "spans"
    copy_warmup_lr: float = 1e-3
    rl_max_steps: int = (
        200  # the RL stage's optimizer steps (always all of them, unless the safety stop fires)
    )
    # the RL run (and the env / rollout of both evaluations); its data, model, teacher path, output_dir, seed and
    # max_steps are set by the demo
    train: TrainConfig = field(default_factory=demo_train_config)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "") -> DemoConfig:
        if data and "env" in data:
            raise ConfigError(f"{where or 'demo'}: {ENV_MOVED}")
        return super().from_dict(data, where)

    def override(self, assignments: list[str] | dict[str, Any]) -> DemoConfig:
        keys = assignments if isinstance(assignments, dict) else [a.split("=", 1)[0] for a in assignments]
        if any(str(k).strip().split(".")[0] == "env" for k in keys):
            raise ConfigError(f"override {ENV_MOVED}")
        return super().override(assignments)


ENV_MOVED = "env moved: set train.env.<key> (the RL run's env, also used by both evaluations)"


def evaluate_model(
    model_dir: Path,
    tasks: list,
    world_dir: Path,
    env: EnvConfig,
    rollout: RolloutConfig,
    batch_size: int = 64,
    on_batch: Callable[[int], None] | None = None,
) -> list:
    """Greedy held-out evaluation through `eval.harness.evaluate`: one `EpisodeRecord` per task."""
    import torch

    from searchgym.eval.harness import evaluate as harness_evaluate
    from searchgym.index.build import load_engine
    from searchgym.models.load import load_model_and_tokenizer
    from searchgym.rollout.hf import HFGenerator

    model, tok = load_model_and_tokenizer(model_dir)
    cfg = eval_config(env, rollout, batch_size)
    with torch.no_grad():
        return harness_evaluate(
            tasks, load_engine(world_dir), HFGenerator(model, tok, batch_size), tok, cfg, on_batch
        )


def eval_config(env: EnvConfig, rollout: RolloutConfig, batch_size: int) -> Any:
    """The demo's evaluations: greedy, the RL run's env and rollout budget."""
    from searchgym.eval.harness import EvalConfig

    return EvalConfig(split="test", batch_size=batch_size, env=env, rollout=replace(rollout, temperature=0.0))


def evaluate(
    model_dir: Path, tasks: list, world_dir: Path, env: EnvConfig, rollout: RolloutConfig
) -> dict[str, Any]:
    """`evaluate_model` as numbers: success, reward, success by level, n (what scripts/experiments.py reads)."""
    from searchgym.eval.harness import summarize

    s = summarize(evaluate_model(model_dir, tasks, world_dir, env, rollout))
    by_level = {lv: v["success"] for lv, v in s["by"]["level"].items()}
    return {
        "success": s["overall"]["success"],
        "reward": s["overall"]["reward"],
        "by_level": by_level,
        "n": s["tasks"],
    }


def held_out_tasks(tasks: list, n: int) -> list:
    """Up to n test-split tasks, the same number from every level (the task file is sorted by level)."""
    test = [t for t in tasks if t.split == "test"]
    levels = sorted({t.level for t in test})
    return [t for lv in levels for t in [t for t in test if t.level == lv][: n // max(len(levels), 1)]]


def rl_config(cfg: DemoConfig, out: Path, rl_dir: Path, overrides: list[str] | None = None) -> TrainConfig:
    """The demo's RL run: `cfg.train` (the cpu-tiny preset) with its student, teacher, world and tasks under `out`,
    writing to `rl_dir`. `scripts/experiments.py` varies this config (estimator, teacher corruption, curriculum,
    seed)."""
    from searchgym.advantage.config import TeacherConfig
    from searchgym.advantage.estimators import estimator_spec

    world_dir = out / "world"
    task_set = "demo" if cfg.sft_task_share >= 1 else "demo-rl"
    try:
        needs_teacher = estimator_spec(cfg.train.estimator).needs_teacher
    except ValueError as e:
        raise ConfigError(f"train.estimator: {e}") from e
    # the demo's SFT teacher scores for the estimators that use one (GRPO runs without loading it), unless
    # train.teacher names another one (a served teacher, or a local model at a path of the user's)
    teacher = cfg.train.teacher
    if not needs_teacher:
        teacher = TeacherConfig()
    elif not teacher.kind or (teacher.kind == "hf" and teacher.path == demo_train_config().teacher.path):
        teacher = replace(teacher, kind="hf", path=str(out / "teacher_sft"))
    run = replace(
        cfg.train,
        data=replace(cfg.train.data, world=str(world_dir), tasks=str(world_dir / "tasks" / task_set)),
        model=replace(cfg.train.model, path=str(out / "student_sft")),
        teacher=teacher,
        output_dir=str(rl_dir),
        seed=cfg.seed,
    )
    return run.override(
        [f"grpo.max_steps={cfg.rl_max_steps}", "grpo.extra={disable_tqdm: true}", *(overrides or [])]
    )


def split_train_tasks(tasks: list, sft_share: float, seed: int) -> tuple[list, list]:
    """(SFT tasks, RL tasks) from the train split: all of them twice for share 1, else a seeded disjoint split."""
    import random

    if not 0 < sft_share <= 1:
        raise ValueError(f"sft_task_share={sft_share}: must be in (0, 1]")
    train = [t for t in tasks if t.split == "train"]
    if sft_share >= 1:
        return train, train
    ids = sorted(t.id for t in train)
    random.Random(f"sft-split/{seed}").shuffle(ids)
    sft_ids = set(ids[: round(sft_share * len(ids))])
    return [t for t in train if t.id in sft_ids], [t for t in train if t.id not in sft_ids]


def check_copy_warmup(cfg: DemoConfig) -> None:
    from searchgym.demo.copywarm import COPY_WARMUP_KINDS

    if cfg.copy_warmup_rows not in COPY_WARMUP_KINDS:
        raise ConfigError(
            f"copy_warmup_rows={cfg.copy_warmup_rows!r}: choose one of {', '.join(COPY_WARMUP_KINDS)}"
        )
    if cfg.copy_warmup_steps < 0 or cfg.copy_warmup_batch_size < 1 or not cfg.copy_warmup_lr > 0:
        raise ConfigError(
            "copy_warmup_steps must be >= 0, copy_warmup_batch_size >= 1 and copy_warmup_lr > 0"
        )


INCOMPLETE_FILE = "incomplete.json"  # stages the safety stop cut short; they are redone by the next run


def _done(path: Path, overwrite: bool, stage: str = "", cut: dict[str, str] | None = None) -> bool:
    return path.exists() and not overwrite and stage not in (cut or {})


def world_and_tasks(
    world_dir: Path,
    seed: int,
    num_entities: int,
    tasks_cfg: TaskConfig,
    overwrite: bool,
    stage: Callable[[str], None],
) -> list:
    """The demos' first stages: the world (with its index) and the task set "demo", each built unless it exists."""
    from searchgym.index.build import build_index
    from searchgym.pipeline import build_world
    from searchgym.tasks.store import load_tasks, save_tasks
    from searchgym.tasks.synth import build_tasks
    from searchgym.world.build import WorldConfig
    from searchgym.world.store import World

    task_dir = world_dir / "tasks" / "demo"
    if not _done(world_dir / "manifest.json", overwrite):
        build_world(WorldConfig(seed=seed, num_entities=num_entities), world_dir, True, progress=False)
    build_index(world_dir, progress=False)
    stage("tasks")
    if not _done(task_dir / "tasks.jsonl", overwrite):
        tcfg = replace(tasks_cfg, seed=seed)
        tasks = build_tasks(World.load(world_dir), tcfg, progress=False)
        save_tasks(tasks, world_dir, "demo", tcfg.to_dict(), overwrite=True)
    return load_tasks(task_dir)


def rl_name(cfg: DemoConfig) -> str:
    estimator = cfg.train.estimator
    return {"grpo": "GRPO", "trac": "TRAC-GRPO"}.get(estimator, f"GRPO ({estimator} estimator)")


def run_demo(cfg: DemoConfig, overwrite: bool = False) -> Path:
    """Run every stage; returns the path of the Markdown report."""
    import shutil

    import datasets
    import torch

    from searchgym.agents.oracle import Oracle, save_transcripts
    from searchgym.demo.progress import SafetyStop, StepBar, demo_progress, eval_bar
    from searchgym.demo.report import write_report
    from searchgym.eval.harness import eval_meta, summarize
    from searchgym.eval.report import write_eval_dir
    from searchgym.index.build import load_engine
    from searchgym.models.card import ModelCard, write_card
    from searchgym.tasks.store import save_tasks
    from searchgym.trainer.grpo import read_metrics, train
    from searchgym.trainer.sft import SFTRunConfig, build_tokenizer, load_transcripts, run_sft
    from searchgym.world.store import World

    datasets.disable_progress_bars()  # the demo's own bars show every stage; no per-dataset-map bars between them
    split_train_tasks([], cfg.sft_task_share, cfg.seed)  # a bad share fails before any work
    check_copy_warmup(cfg)
    cfg.tasks.validate()
    rl_config(cfg, Path(cfg.out), Path(cfg.out) / "rl")  # so does a bad train section
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    t0 = time.monotonic()
    deadline = t0 + cfg.minutes * 60
    out = Path(cfg.out)
    world_dir, task_dir = out / "world", out / "world" / "tasks" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    cfg.to_yaml(out / "demo_config.yaml")
    marker = out / INCOMPLETE_FILE
    earlier_cut = read_json(marker, f"delete {marker}") if marker.exists() else {}
    cut: dict[str, str] = {}  # stage -> why it is incomplete (this run)
    timings: dict[str, float] = {}
    card = ModelCard("tags", "searchgym demo (tiny student / teacher, tag actions)")
    with demo_progress() as progress:
        stages = progress.add_task("demo", total=9 + (cfg.copy_warmup_steps > 0), info="")

        def stage(name: str) -> None:
            timings[name] = round(time.monotonic() - t0, 1)
            progress.update(stages, description=f"demo: {name}", advance=1)

        def stopped(name: str, stop: SafetyStop, planned: int) -> None:
            if stop.stopped_at is not None:
                cut[name] = (
                    f"{name} stopped at step {stop.stopped_at} of {planned} by the {cfg.minutes:g}-minute safety stop"
                )

        stage("world")
        tasks = world_and_tasks(world_dir, cfg.seed, cfg.num_entities, cfg.tasks, overwrite, stage)
        stage("oracle transcripts")
        sft_tasks, rl_tasks = split_train_tasks(tasks, cfg.sft_task_share, cfg.seed)
        if cfg.sft_task_share < 1:
            save_tasks(rl_tasks, world_dir, "demo-rl", {"sft_task_share": cfg.sft_task_share}, overwrite=True)
        transcripts = out / "transcripts.jsonl"
        if not _done(transcripts, overwrite):
            oracle = Oracle(World.load(world_dir), load_engine(world_dir), cfg.train.env, spaced_args=True)
            save_transcripts(transcripts, oracle.run(sft_tasks, progress=False))
        rows = load_transcripts(transcripts, True, strip_think=not cfg.train.env.require_think)
        tok_dir = out / "tokenizer"
        if not _done(tok_dir, overwrite):
            build_tokenizer(world_dir, rows, cfg.vocab_size).save_pretrained(tok_dir)
        sft_file = transcripts
        if cfg.sft_renamed_copies > 0:
            from searchgym.demo.rename import renamed_transcripts
            from searchgym.io import write_jsonl

            names = [e.name for e in World.load(world_dir).entities.values()]
            sft_file = out / "transcripts_sft.jsonl"
            write_jsonl(sft_file, rows + renamed_transcripts(rows, names, cfg.sft_renamed_copies, cfg.seed))
        retrained = False
        plan = [
            ("student", cfg.student, cfg.student_sft_steps),
            ("teacher", cfg.teacher, cfg.teacher_sft_steps),
        ]
        if cfg.copy_warmup_steps > 0:
            from searchgym.demo.copywarm import copy_warmup_rows, span_rows
            from searchgym.io import write_jsonl

            names = [e.name for e in World.load(world_dir).entities.values()]
            count = cfg.copy_warmup_steps * cfg.copy_warmup_batch_size
            warm = (
                span_rows(names, count, cfg.seed)
                if cfg.copy_warmup_rows == "spans"
                else copy_warmup_rows(rows, names, count, cfg.seed)
            )
            write_jsonl(out / "copy_warmup.jsonl", warm)
            plan.insert(0, ("warmup", cfg.student, cfg.copy_warmup_steps))
        lr = {"warmup": cfg.copy_warmup_lr} | (
            {"teacher": cfg.teacher_lr} if cfg.teacher_from_student else {}
        )
        for name, shape, steps in plan:
            label = "copy warm-up" if name == "warmup" else f"SFT {name}"
            stage(label)
            target = out / f"{name}_sft"
            init = {
                "student": out / "warmup_sft" if cfg.copy_warmup_steps > 0 else None,
                "teacher": out / "student_sft" if cfg.teacher_from_student else None,
            }.get(name)  # the model this stage continues (None: a fresh one)
            if _done(target / "model.safetensors", overwrite, label, earlier_cut) and not (
                init is not None and retrained
            ):
                continue
            scfg = SFTRunConfig(
                strip_think=not cfg.train.env.require_think,
                model_size="student" if name == "warmup" else name,
                model_overrides={k: v for k, v in shape.to_dict().items() if k != "seed"},
                max_steps=steps,
                learning_rate=lr[name] if name in lr else cfg.sft_lr,
                batch_size=cfg.copy_warmup_batch_size if name == "warmup" else cfg.sft_batch_size,
                vocab_size=cfg.vocab_size,
                seed=cfg.seed,
            )
            stop = SafetyStop(deadline)
            callbacks = [StepBar(progress, steps, label), stop]
            run_sft(
                world_dir,
                out / "copy_warmup.jsonl" if name == "warmup" else sft_file,
                target,
                scfg,
                tokenizer_dir=tok_dir,
                init_model=init,
                callbacks=callbacks,
            )
            write_card(target, card)
            stopped(label, stop, steps)
            retrained = True
        held_out = held_out_tasks(tasks, cfg.eval_tasks)
        ecfg = eval_config(cfg.train.env, cfg.train.rollout, cfg.eval_batch_size)
        evals = {}
        for when, model_dir in (("before", out / "student_sft"), ("after", out / "rl" / "final")):
            if when == "after":
                stage(rl_name(cfg))
                rl_dir = out / "rl"
                shutil.rmtree(rl_dir, ignore_errors=True)
                stop = SafetyStop(deadline)
                train(
                    rl_config(cfg, out, rl_dir),
                    callbacks=[stop, StepBar(progress, cfg.rl_max_steps, rl_name(cfg))],
                )
                write_card(model_dir, card)
                stopped(rl_name(cfg), stop, cfg.rl_max_steps)
            stage(f"evaluate {when}")
            bar = eval_bar(progress, len(held_out), f"evaluate {when}")
            records = evaluate_model(
                model_dir,
                held_out,
                world_dir,
                cfg.train.env,
                cfg.train.rollout,
                cfg.eval_batch_size,
                on_batch=bar,
            )
            meta = eval_meta(
                f"demo {when} RL",
                "demo",
                "test",
                ecfg,
                world=world_dir.resolve(),
                task_set=task_dir.resolve(),
            )
            write_eval_dir(out / f"eval_{when}", records, summarize(records), meta, overwrite=True)
            evals[when] = records
        stage("report")
        timings["total"] = round(time.monotonic() - t0, 1)
        incomplete = list(cut.values())
        report = write_report(
            out,
            evals["before"],
            evals["after"],
            read_metrics(out / "rl"),
            timings,
            cfg,
            rl_name(cfg),
            incomplete,
        )
        if cut:
            write_json(marker, cut)
        else:
            marker.unlink(missing_ok=True)
        for stale in ("eval_before.json", "eval_after.json"):  # written by demos before the eval directories
            (out / stale).unlink(missing_ok=True)
    return report
