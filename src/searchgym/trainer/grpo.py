"""`searchgym train`: TRL's GRPOTrainer (our TRAC subclass, for every estimator) with SearchGym's multi-turn rollout.

No training loop here: TRL iterates the curriculum's task rows (trainer/data.py), generates through our
`rollout_func`, computes the loss, logs (`report_to`), checkpoints and resumes. We add the curriculum callback, a JSON
Lines metrics file, the rollout sample for the viewer (`rollouts.jsonl`), and checkpoint integrity (a checkpoint counts
only once our callback has written its state file into it, last).
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
from searchgym.trainer.config import TrainConfig, generator_kind, grpo_args, rollout_config
from searchgym.trainer.curriculum_cb import (
    STATE_FILE,
    CurriculumCallback,
    CurriculumTracker,
    load_curriculum_state,
)
from searchgym.trainer.data import CurriculumStream, tasks_by_prompt
from searchgym.trainer.rollout_func import SearchRolloutFunc, env_reward
from searchgym.trainer.rollout_log import ROLLOUTS_FILE, RolloutLog

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
    """Drop JSONL rows (metrics, rollouts) logged after the checkpoint we resume from (the resumed run logs them
    again)."""
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


def build_run(
    cfg: TrainConfig, resume: bool = False, callbacks: list | None = None, progress: bool = True
) -> Run:
    """Everything `train` needs, ready to call `.trainer.train(resume_from_checkpoint=run.resume_from)`.

    `progress=False`: no tqdm bar and no per-step log dicts on stdout (for callers that show their own progress)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from searchgym.env.env import SearchEnv
    from searchgym.index.build import load_engine
    from searchgym.tasks.curriculum import Curriculum

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    cfg.validate()
    if cfg.grpo.use_vllm and cfg.grpo.vllm_mode == "server" and not torch.cuda.is_available():
        raise ConfigError(
            "grpo.vllm_mode=server needs a CUDA device: TRL syncs the policy into the vLLM server over NCCL "
            "(TRL's VLLMClient.init_communicator); on CPU train with grpo.use_vllm=false"
        )
    out = Path(cfg.output_dir)
    resume_from = None
    if checkpoints(out) and not resume:
        raise ConfigError(
            f"{out} already has checkpoints; pass --resume to continue, or choose another output_dir"
        )
    if resume:
        resume_from = last_complete_checkpoint(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in (METRICS_FILE, ROLLOUTS_FILE):
        if resume_from is None:
            (out / name).unlink(missing_ok=True)
        else:
            _truncate_metrics(out / name, int(resume_from.name.split("-")[-1]))
    cfg.to_yaml(out / "config.yaml")

    tasks = load_train_tasks(cfg)
    engine = load_engine(cfg.data.world, cfg.data.backend)
    curriculum = Curriculum(tasks, cfg.curriculum)
    by_prompt = tasks_by_prompt([t for pool in curriculum.pools for ts in pool.values() for t in ts], cfg.env)
    tracker = CurriculumTracker(curriculum)
    if resume_from is not None:
        load_curriculum_state(resume_from, tracker)

    tokenizer = AutoTokenizer.from_pretrained(cfg.model.path)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(cfg.model.path, dtype=getattr(torch, cfg.model.dtype))
    args = grpo_args(cfg)
    if not progress:
        args.disable_tqdm = True
    stream = CurriculumStream(tracker, cfg.env, args.generation_batch_size // args.num_generations)
    rollout_func = SearchRolloutFunc(
        tracker=tracker,
        tasks=by_prompt,
        env_factory=lambda: SearchEnv(engine, cfg.env),
        tokenizer=tokenizer,
        rollout_cfg=rollout_config(cfg),
        generator=generator_kind(cfg),
        server_url=cfg.grpo.vllm_server_base_url,
        seed=cfg.seed,
        drop_equal_groups=cfg.equal_groups == "drop",
    )
    trainer = _make_trainer(
        cfg,
        model=model,
        reward_funcs=[env_reward],
        args=args,
        train_dataset=stream.dataset(),
        processing_class=tokenizer,
        rollout_func=rollout_func,
        peft_config=_peft_config(cfg),
        callbacks=[CurriculumCallback(tracker), MetricsJsonl(out / METRICS_FILE), *(callbacks or [])],
        on_batch=RolloutLog(
            out / ROLLOUTS_FILE,
            tokenizer,
            cfg.log_rollouts,
            cfg.grpo.logging_steps,
            cfg.log_rollouts_max_bytes,
            cfg.seed,
        ),
    )
    if not progress:
        from transformers import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return Run(trainer, rollout_func, tracker, resume_from, out)


def _make_trainer(cfg: TrainConfig, **common: Any) -> Any:
    """`TRACGRPOTrainer` for every estimator: with "grpo" and no teacher its advantages are TRL's own."""
    from searchgym.advantage.passrates import load_pass_rates
    from searchgym.advantage.teacher import make_teacher
    from searchgym.trainer.trac_grpo import TRACGRPOTrainer

    teacher = make_teacher(cfg.teacher, common["processing_class"])
    pass_rates = load_pass_rates(cfg.data.pass_rates) if cfg.data.pass_rates else None
    return TRACGRPOTrainer(
        teacher=teacher, estimator=cfg.estimator, trac_config=cfg.trac, pass_rates=pass_rates, **common
    )


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


def train(
    cfg: TrainConfig, resume: bool = False, callbacks: list | None = None, progress: bool = True
) -> Run:
    """Run (or resume) training; the final model is saved to `output_dir/final`."""
    run = build_run(cfg, resume=resume, callbacks=callbacks, progress=progress)
    run.trainer.train(resume_from_checkpoint=str(run.resume_from) if run.resume_from else None)
    with atomic_dir(run.output_dir / "final", overwrite=True) as tmp:
        run.trainer.save_model(str(tmp))
        run.trainer.processing_class.save_pretrained(str(tmp))
    return run


def read_metrics(output_dir: Path) -> list[dict]:
    path = Path(output_dir) / METRICS_FILE
    return list(read_jsonl(path)) if path.exists() else []
