"""`searchgym train`: TRL's GRPOTrainer (or the TRAC subclass) with SearchGym's multi-turn rollout.

No training loop here: TRL generates through our `rollout_func`, computes the group advantages and the clipped
loss, logs (`report_to`), checkpoints and resumes. We add the curriculum callback, a JSON Lines metrics file, and
checkpoint integrity (a checkpoint counts only once our callback has written its state file into it, last).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from searchgym.config import ConfigError
from searchgym.io import atomic_dir, atomic_write_text, read_jsonl
from searchgym.trainer.config import TrainConfig, env_config, grpo_args, rollout_config, trac_config
from searchgym.trainer.curriculum_cb import (
    STATE_FILE,
    CurriculumCallback,
    CurriculumTracker,
    load_curriculum_state,
)
from searchgym.trainer.rollout_func import SearchRolloutFunc, env_reward, slot_prompts

METRICS_FILE = "metrics.jsonl"


class MetricsJsonl(TrainerCallback):
    """Appends every TRL log record (one per logging step) to `output_dir/metrics.jsonl`."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and logs:
            row = {"step": state.global_step, **{k: v for k, v in logs.items() if _is_number(v)}}
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
                f.flush()
                os.fsync(f.fileno())
        return control


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def is_complete(ckpt: Path) -> bool:
    """A checkpoint is complete when trainer_state.json parses and our state file (written last) exists."""
    try:
        json.loads((ckpt / "trainer_state.json").read_text())
        json.loads((ckpt / STATE_FILE).read_text())
    except (OSError, ValueError):
        return False
    return True


def checkpoints(output_dir: Path) -> list[Path]:
    found = [
        p for p in Path(output_dir).glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint; newer incomplete ones (a kill during saving) are moved aside."""
    ckpts = checkpoints(output_dir)
    good = [c for c in ckpts if is_complete(c)]
    last = good[-1] if good else None
    aside = Path(output_dir) / "incomplete"
    for c in ckpts:
        if not is_complete(c):
            aside.mkdir(exist_ok=True)
            shutil.rmtree(aside / c.name, ignore_errors=True)
            os.replace(c, aside / c.name)
    return last


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric rows logged after the checkpoint we resume from (the resumed run logs them again)."""
    if not path.exists():
        return
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by the kill
            if row.get("step", 0) <= step:
                rows.append(line if line.endswith("\n") else line + "\n")
    atomic_write_text(path, "".join(rows))


@dataclass
class Run:
    trainer: Any
    rollout_func: SearchRolloutFunc
    tracker: CurriculumTracker
    resume_from: Path | None
    output_dir: Path


def load_train_tasks(cfg: TrainConfig) -> list:
    from searchgym.tasks.store import load_tasks

    return load_tasks(_tasks_path(cfg))  # the curriculum keeps its `split` (train by default)


def _tasks_path(cfg: TrainConfig) -> Path:
    return Path(cfg.data.tasks) if cfg.data.tasks else Path(cfg.data.world) / "tasks" / "default"


def build_run(cfg: TrainConfig, resume: bool = False, callbacks: list | None = None) -> Run:
    """Everything `train` needs, ready to call `.trainer.train(resume_from_checkpoint=run.resume_from)`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from searchgym.env.env import SearchEnv
    from searchgym.index.build import load_engine
    from searchgym.tasks.curriculum import Curriculum

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    cfg.validate()
    out = Path(cfg.output_dir)
    resume_from = None
    if checkpoints(out) and not resume:
        raise ConfigError(
            f"{out} already has checkpoints; pass --resume to continue, or choose another output_dir"
        )
    if resume:
        resume_from = last_complete_checkpoint(out)
    out.mkdir(parents=True, exist_ok=True)
    if resume_from is None:
        (out / METRICS_FILE).unlink(missing_ok=True)
    else:
        _truncate_metrics(out / METRICS_FILE, int(resume_from.name.split("-")[-1]))
    cfg.to_yaml(out / "config.yaml")

    tasks = load_train_tasks(cfg)
    engine = load_engine(cfg.data.world, cfg.data.backend)
    ecfg = env_config(cfg)
    tracker = CurriculumTracker(Curriculum(tasks, cfg.curriculum))
    if resume_from is not None:
        load_curriculum_state(resume_from, tracker)

    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=getattr(torch, cfg.model.dtype))
    args = grpo_args(cfg)
    groups_per_step = args.generation_batch_size // args.num_generations
    dataset = Dataset.from_dict({"prompt": slot_prompts(groups_per_step * max(args.max_steps, 1))})

    rollout_func = SearchRolloutFunc(
        tracker=tracker,
        env_factory=lambda: SearchEnv(engine, ecfg),
        tokenizer=tokenizer,
        rollout_cfg=rollout_config(cfg),
        seed=cfg.seed,
        success_reward=cfg.success_reward,
        drop_equal_groups=cfg.equal_groups == "drop",
    )
    common = dict(
        model=model,
        reward_funcs=[env_reward],
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        rollout_func=rollout_func,
        peft_config=_peft_config(cfg),
        callbacks=[CurriculumCallback(tracker), MetricsJsonl(out / METRICS_FILE), *(callbacks or [])],
    )
    trainer = _make_trainer(cfg, common)
    if cfg.grpo.extra.get("disable_tqdm"):  # the caller shows progress; no per-step log dicts on stdout
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return Run(trainer, rollout_func, tracker, resume_from, out)


def _make_trainer(cfg: TrainConfig, common: dict) -> Any:
    if cfg.estimator == "grpo":
        from trl import GRPOTrainer

        return GRPOTrainer(**common)
    from searchgym.advantage.passrates import load_pass_rates
    from searchgym.advantage.teacher import HFTeacher
    from searchgym.models.load import load_model_and_tokenizer
    from searchgym.trainer.trac_grpo import TRACGRPOTrainer

    teacher = None
    if cfg.model.teacher:
        t_model, t_tok = load_model_and_tokenizer(cfg.model.teacher, dtype=cfg.model.dtype)
        teacher = HFTeacher(t_model, t_tok, student_tokenizer=common["processing_class"])
        if cfg.model.teacher_corruption:
            from searchgym.advantage.teacher import CorruptedTeacher

            teacher = CorruptedTeacher(teacher, **cfg.model.teacher_corruption)
    rates = Path(cfg.data.pass_rates) if cfg.data.pass_rates else None
    pass_rates = load_pass_rates(rates) if rates is not None else None
    return TRACGRPOTrainer(teacher=teacher, trac_config=trac_config(cfg), pass_rates=pass_rates, **common)


def _peft_config(cfg: TrainConfig) -> Any:
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    lo = cfg.lora
    return LoraConfig(
        r=lo.r,
        lora_alpha=lo.alpha,
        lora_dropout=lo.dropout,
        target_modules=lo.target_modules,
        task_type="CAUSAL_LM",
    )


def train(cfg: TrainConfig, resume: bool = False, callbacks: list | None = None) -> Run:
    """Run (or resume) training; the final model is saved to `output_dir/final`."""
    run = build_run(cfg, resume=resume, callbacks=callbacks)
    run.trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    with atomic_dir(run.output_dir / "final", overwrite=True) as tmp:
        run.trainer.save_model(str(tmp))
        run.trainer.processing_class.save_pretrained(str(tmp))
    return run


def read_metrics(output_dir: Path) -> list[dict]:
    path = Path(output_dir) / METRICS_FILE
    return list(read_jsonl(path)) if path.exists() else []
