"""CPU-scale experiments: GRPO vs GRPO + uncalibrated teacher vs naive reward mixing vs TRAC-GRPO, with the demo's
teacher and with a corrupted teacher, and curriculum vs a flat mix, over several RL seeds.

    python scripts/experiments.py --demo runs/demo --out docs/results/experiments [--seeds 0 1 2] [--shard 0/2]
    python scripts/experiments.py --demo runs/demo --out docs/results/experiments --plot-only

Needs a finished `searchgym demo` run (world, tasks, SFT student and teacher). Every run is the demo's own RL run
(`searchgym.demo.pipeline.rl_config`: same student, teacher, tasks, environment, 200 steps) with one thing changed,
then a greedy evaluation on the demo's held-out tasks. The corrupted teacher is the config switch
`model.teacher_corruption` (30 % of scored positions shuffled, 30 % inverted). Rows are appended to
`<out>/results.jsonl` as runs finish, so an interrupted sweep continues where it stopped and several `--shard`
processes can share one output; `<out>/results.md` (mean ± std over seeds) and `<out>/results.png` (error bars) are
rewritten from all rows. Checkpoints go to /tmp and are deleted: only tables and figures belong in the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import torch

METHODS = {
    "sft": "SFT student (before RL)",
    "grpo": "GRPO",
    "uncalibrated": "GRPO + uncalibrated teacher",
    "reward_mix": "reward mixing",
    "trac": "TRAC-GRPO",
}
CORRUPTION = {"shuffle": 0.3, "invert": 0.3}
FLAT = ["curriculum.stages=[{name: flat, levels: [1, 2], mix: {}}]", "curriculum.replay=0.0"]
TRAC_KEYS = (
    "trac/w_D/mean",
    "trac/w_C/mean",
    "trac/omega/mean",
    "trac/teacher_reward/correct",
    "trac/teacher_reward/wrong",
)


def grid(seeds: list[int]) -> list[tuple[str, str, bool, int]]:
    """(method, teacher, curriculum, seed), seed-major so that a cut-short sweep still has whole seeds."""
    runs = [("sft", "none", True, 0)]
    for s in seeds:
        runs.append(("grpo", "none", True, s))
        runs += [
            (m, t, True, s) for t in ("demo", "corrupted") for m in ("uncalibrated", "reward_mix", "trac")
        ]
        runs += [("grpo", "none", False, s), ("trac", "demo", False, s)]
    return runs


def run_one(demo: Path, method: str, teacher: str, curriculum: bool, seed: int) -> dict:
    from searchgym.demo.pipeline import DemoConfig, evaluate, held_out_tasks, rl_config
    from searchgym.tasks.store import load_tasks
    from searchgym.trainer.grpo import read_metrics, train

    dcfg = DemoConfig.from_yaml(demo / "demo_config.yaml")
    held_out = held_out_tasks(load_tasks(demo / "world" / "tasks" / "demo"), dcfg.eval_tasks)
    t0 = time.monotonic()
    metrics: list[dict] = []
    if method == "sft":
        model_dir, out = demo / "student_sft", None
    else:
        out = Path("/tmp") / f"sg-exp-{method}-{teacher}-{int(curriculum)}-{seed}"
        shutil.rmtree(out, ignore_errors=True)
        over = [f"estimator={method}", f"seed={seed}", f"curriculum.seed={seed}", "grpo.save_steps=100000"]
        if teacher == "corrupted":
            over.append(f"teacher.corruption={json.dumps({**CORRUPTION, 'seed': seed})}")
        if not curriculum:
            over += FLAT
        train(rl_config(dcfg, demo, out, over))
        model_dir = out / "final"
        metrics = read_metrics(out)
    result = evaluate(model_dir, held_out, demo / "world", dcfg.train.env, dcfg.train.rollout)
    if out is not None:
        shutil.rmtree(out, ignore_errors=True)
    tail = metrics[-50:]
    return {
        "method": method,
        "teacher": teacher,
        "curriculum": curriculum,
        "seed": seed,
        "steps": max((m["step"] for m in metrics), default=0),
        "success": result["success"],
        "reward": result["reward"],
        "by_level": result["by_level"],
        "train_success_last50": _mean(tail, "searchgym/success"),
        **{k: _mean(tail, k) for k in TRAC_KEYS if any(k in m for m in tail)},
        "seconds": round(time.monotonic() - t0, 1),
    }


def _mean(rows: list[dict], key: str) -> float | None:
    xs = [m[key] for m in rows if key in m]
    return statistics.mean(xs) if xs else None


def _label(method: str, teacher: str, curriculum: bool) -> str:
    return f"{METHODS[method]}{'' if teacher == 'none' else f' ({teacher} teacher)'}{'' if curriculum else ', flat'}"


def summarise(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    order = {key: i for i, key in enumerate(dict.fromkeys((m, t, c) for m, t, c, _ in grid([0])))}
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["method"], r["teacher"], r["curriculum"]), []).append(r)
    lines = [
        "| run | curriculum | held-out success, mean ± std | per seed | level 1 | level 2 | train success (last 50 steps) "
        "| w_D | ω | teacher reward: correct / wrong |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    labels, means, stds = [], [], []
    for key in sorted(groups, key=lambda k: order.get(k, 99)):
        rs = sorted(groups[key], key=lambda r: r["seed"])
        xs = [r["success"] for r in rs]
        m, sd = statistics.mean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0
        lv = {lvl: statistics.mean(r["by_level"].get(lvl, 0.0) for r in rs) for lvl in ("1", "2")}
        train_s = [r["train_success_last50"] for r in rs if r.get("train_success_last50") is not None]
        train_txt = f"{statistics.mean(train_s):.1%}" if train_s else "—"
        diag = {k: [r[k] for r in rs if r.get(k) is not None] for k in TRAC_KEYS}
        d = {k: statistics.mean(v) for k, v in diag.items() if v}
        trac_txt = (
            f"{d['trac/w_D/mean']:.2f} | {d['trac/omega/mean']:.2f} | "
            f"{d['trac/teacher_reward/correct']:+.2f} / {d['trac/teacher_reward/wrong']:+.2f}"
            if len(d) == len(TRAC_KEYS)
            else "— | — | —"
        )
        lines.append(
            f"| {_label(*key[:2], True)} | {'—' if key[0] == 'sft' else 'stage 1 → 2' if key[2] else 'flat'} | {m:.1%} ± {sd:.1%} | "
            f"{', '.join(f'{x:.1%}' for x in xs)} | {lv['1']:.1%} | {lv['2']:.1%} | {train_txt} | {trac_txt} |"
        )
        labels.append(_label(*key))
        means.append(m)
        stds.append(sd)
    tmp = out / "results.md.tmp"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out / "results.md")
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.barh(range(len(labels)), means, xerr=stds, capsize=4, color="tab:blue")
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("held-out success (greedy, 79 tasks); error bar = std over RL seeds")
    fig.tight_layout()
    fig.savefig(out / "results.png.tmp.png", dpi=120)
    os.replace(out / "results.png.tmp.png", out / "results.png")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--demo", default="runs/demo")
    ap.add_argument("--out", default="docs/results/experiments")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--shard", default="0/1", help="i/n: run every n-th grid entry starting at i")
    ap.add_argument("--plot-only", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("TQDM_DISABLE", "1")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.jsonl"

    def load() -> list[dict]:
        return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []

    if not a.plot_only:
        i, n = (int(x) for x in a.shard.split("/"))
        for k, (method, teacher, cur, seed) in enumerate(grid(a.seeds)):
            done = {(r["method"], r["teacher"], r["curriculum"], r["seed"]) for r in load()}
            if k % n != i or (method, teacher, cur, seed) in done:
                continue
            row = run_one(Path(a.demo), method, teacher, cur, seed)
            with open(path, "a") as f:  # one short line per append: shards can share the file
                f.write(json.dumps(row, sort_keys=True) + "\n")
            print(json.dumps(row), flush=True)
    summarise(load(), out)


if __name__ == "__main__":
    main()
