"""Training throughput for the cpu-tiny preset: model tokens/s and the share of step time spent in rollout
generation, environment, teacher scoring and optimisation.

    python bench/bench_train.py --demo runs/demo [--steps 5] [--estimator trac]

Needs a finished `searchgym demo` directory (world, tasks, SFT student and teacher). Writes
bench/results/train.json. Wall time and process CPU time are both reported: on a machine shared with other jobs,
CPU time is the better estimate of what a quiet machine would do.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from transformers import TrainerCallback

from searchgym.io import write_json


class StepClock(TrainerCallback):
    def __init__(self):
        self.wall, self.cpu = [], []

    def on_step_begin(self, args, state, control, **kwargs):
        self._w, self._c = time.perf_counter(), time.process_time()

    def on_step_end(self, args, state, control, **kwargs):
        self.wall.append(time.perf_counter() - self._w)
        self.cpu.append(time.process_time() - self._c)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="runs/demo")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--estimator", default="trac")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="bench/results/train.json")
    a = ap.parse_args()

    import torch

    from searchgym.trainer.config import TrainConfig
    from searchgym.trainer.grpo import build_run
    from searchgym.trainer.presets import resolve_preset

    torch.set_num_threads(a.threads)
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    demo = Path(a.demo)
    out_dir = Path("/tmp") / f"bench_train_{os.getpid()}"
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(
        [
            f"data.world={demo / 'world'}",
            f"data.tasks={demo / 'world' / 'tasks' / 'demo'}",
            f"model.path={demo / 'student_sft'}",
            f"teacher.kind={'' if a.estimator == 'grpo' else 'hf'}",  # plain GRPO scores nothing
            f"teacher.path={demo / 'teacher_sft'}",
            f"estimator={a.estimator}",
            f"grpo.max_steps={a.steps}",
            "grpo.save_steps=100000",
            f"output_dir={out_dir}",
        ]
    )
    run = build_run(cfg)
    trainer = run.trainer
    clock = StepClock()
    trainer.add_callback(clock)
    teacher_seconds = [0.0]
    teacher = getattr(trainer, "teacher", None)
    if teacher is not None:
        score_full = teacher.score_full

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return score_full(*args, **kwargs)
            finally:
                teacher_seconds[0] += time.perf_counter() - t0

        teacher.score_full = timed
    trainer.train()

    times = run.rollout_func.times
    wall = sum(clock.wall)
    generation = times.model
    env = times.env
    rollout_other = max(times.rollout - generation - env, 0.0)
    optimisation = max(wall - times.rollout - teacher_seconds[0], 0.0)
    result = {
        "preset": "cpu-tiny",
        "estimator": a.estimator,
        "steps": len(clock.wall),
        "threads": a.threads,
        "rollouts_per_step": cfg.grpo.per_device_train_batch_size,
        "model_tokens": times.tokens,
        "model_tokens_per_s_wall": times.tokens / wall if wall else 0.0,
        "generation_tokens_per_s": times.tokens / generation if generation else 0.0,
        "step_seconds_wall": wall / max(len(clock.wall), 1),
        "step_seconds_cpu": sum(clock.cpu) / max(len(clock.cpu), 1),
        "share": {
            "rollout_generation": generation / wall,
            "environment": env / wall,
            "rollout_other": rollout_other / wall,
            "teacher_scoring": teacher_seconds[0] / wall,
            "optimisation": optimisation / wall,
        },
        "load_average": os.getloadavg(),
    }
    write_json(Path(a.out), result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
