"""CPU-scale experiments: GRPO vs GRPO + uncalibrated teacher vs naive reward mixing vs TRAC-GRPO, with the demo's
teacher and with a corrupted teacher, and curriculum vs a flat mix, over several seeds.

    python scripts/experiments.py --demo runs/demo --out experiments/cpu [--seeds 0 1 2] [--steps 40]
    python scripts/experiments.py --demo runs/demo --out experiments/cpu --plot-only

Needs a finished `searchgym demo` run (world, tasks, SFT student and teacher). Each run trains from the SFT
student with the cpu-tiny preset and is evaluated greedily on the demo's held-out tasks; results go to
`<out>/results.jsonl` (one row per run, appended as runs finish, so an interrupted sweep continues where it
stopped), then `<out>/results.md` (table: mean ± std over seeds) and `<out>/results.png` (error bars).
Checkpoints and models are written under /tmp and deleted; only figures and tables belong in the repository.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

import torch

METHODS = {
    "grpo": "GRPO",
    "uncalibrated": "GRPO + uncalibrated teacher",
    "reward_mix": "reward mixing",
    "trac": "TRAC-GRPO",
}
TEACHERS = ("demo", "corrupted")
FLAT = {"stages": [{"name": "flat", "levels": [1, 2], "mix": {}}], "replay": 0.0}


class CorruptedTeacher:
    """A teacher whose token scores are partly shuffled across positions and partly inverted (log p -> -log p
    around the batch mean) — the 'deliberately corrupted teacher' of the experiments."""

    def __init__(self, teacher, shuffle: float = 0.3, invert: float = 0.3, seed: int = 0):
        self.teacher, self.shuffle, self.invert = teacher, shuffle, invert
        self.vocab_size = teacher.vocab_size
        self.gen = torch.Generator().manual_seed(seed)

    def score_full(self, sequences, masks):
        s = self.teacher.score_full(sequences, masks)
        logp = s.logp.clone()
        flat = logp.view(-1)
        u = torch.rand(flat.shape, generator=self.gen)
        shuffled = u < self.shuffle
        flat[shuffled] = flat[shuffled][torch.randperm(int(shuffled.sum()), generator=self.gen)]
        inverted = (u >= self.shuffle) & (u < self.shuffle + self.invert)
        flat[inverted] = 2 * flat.mean() - flat[inverted]
        return type(s)(logp.clamp(max=0.0), s.entropy, s.max_logp)

    def score(self, sequences, masks):
        s = self.score_full(sequences, masks)
        return s.logp, s.entropy


def run_one(demo: Path, method: str, teacher: str, curriculum: bool, seed: int, steps: int) -> dict:
    from searchgym.tasks.store import load_tasks
    from searchgym.trainer.config import TrainConfig
    from searchgym.trainer.demo import DemoConfig, evaluate, held_out_tasks
    from searchgym.trainer.grpo import build_run, read_metrics
    from searchgym.trainer.presets import resolve_preset

    dcfg = DemoConfig.from_yaml(demo / "demo_config.yaml")
    out = Path("/tmp") / f"sg-exp-{method}-{teacher}-{int(curriculum)}-{seed}"
    shutil.rmtree(out, ignore_errors=True)
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(
        [
            f"data.world={demo / 'world'}",
            f"data.tasks={demo / 'world' / 'tasks' / 'demo'}",
            f"model.path={demo / 'student_sft'}",
            f"model.teacher={demo / 'teacher_sft'}",
            f"estimator={method}",
            f"grpo.max_steps={steps}",
            "grpo.save_steps=100000",
            f"output_dir={out}",
            f"seed={seed}",
            f"curriculum.seed={seed}",
        ]
    )
    if not curriculum:
        cfg = cfg.override([f"curriculum={json.dumps(FLAT)}"])
    run = build_run(cfg)
    if teacher == "corrupted" and getattr(run.trainer, "teacher", None) is not None:
        run.trainer.teacher = CorruptedTeacher(run.trainer.teacher, seed=seed)
    run.trainer.train()
    run.trainer.save_model(str(out / "final"))
    run.trainer.processing_class.save_pretrained(str(out / "final"))
    held_out = held_out_tasks(load_tasks(demo / "world" / "tasks" / "demo"), dcfg.eval_tasks)
    result = evaluate(out / "final", held_out, demo / "world", dcfg.env, dcfg.train.get("rollout", {}))
    metrics = read_metrics(out)
    shutil.rmtree(out, ignore_errors=True)
    return {
        "method": method,
        "teacher": teacher if method != "grpo" else "none",
        "curriculum": curriculum,
        "seed": seed,
        "steps": steps,
        "success": result["success"],
        "reward": result["reward"],
        "by_level": result["by_level"],
        "train_success_last": next(
            (m["searchgym/success"] for m in reversed(metrics) if "searchgym/success" in m), None
        ),
    }


def grid(seeds: list[int]) -> list[tuple[str, str, bool, int]]:
    runs = [("grpo", "none", True, s) for s in seeds]
    runs += [(m, t, True, s) for m in ("uncalibrated", "reward_mix", "trac") for t in TEACHERS for s in seeds]
    runs += [(m, "demo", False, s) for m in ("grpo", "trac") for s in seeds]
    return runs


def summarise(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list[float]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["teacher"], r["curriculum"]), []).append(r["success"])
    lines = [
        "| method | teacher | curriculum | held-out success (mean ± std) | seeds |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels, means, stds = [], [], []
    for (method, teacher, cur), xs in sorted(groups.items()):
        m, sd = statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0
        lines.append(
            f"| {METHODS[method]} | {teacher} | {'yes' if cur else 'flat'} | {m:.1%} ± {sd:.1%} | {len(xs)} |"
        )
        labels.append(f"{METHODS[method]}\n{teacher}{'' if cur else ', flat'}")
        means.append(m)
        stds.append(sd)
    (out / "results.md").write_text("\n".join(lines) + "\n")
    fig, ax = plt.subplots(figsize=(max(6, len(labels) * 1.1), 4))
    ax.bar(range(len(labels)), means, yerr=stds, capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
    ax.set_ylabel("held-out success")
    fig.tight_layout()
    fig.savefig(out / "results.png", dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="runs/demo")
    ap.add_argument("--out", default="experiments/cpu")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--plot-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []
    if not a.plot_only:
        done = {(r["method"], r["teacher"], r["curriculum"], r["seed"]) for r in rows}
        for method, teacher, cur, seed in grid(a.seeds):
            if (method, teacher, cur, seed) in done:
                continue
            row = run_one(Path(a.demo), method, teacher if teacher != "none" else "demo", cur, seed, a.steps)
            rows.append(row)
            with open(path, "a") as f:
                f.write(json.dumps(row, sort_keys=True) + "\n")
            print(json.dumps(row))
    summarise(rows, out)


if __name__ == "__main__":
    main()
