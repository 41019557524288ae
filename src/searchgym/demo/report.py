"""The demo's report: report.md, summary.json (every number of the report, nothing from the clock), timings.json,
and the figures training.png, levels.png and trac.png.

Numbers come from the two held-out evaluations (`eval.harness` records of the same tasks) and the RL run's
metrics.jsonl. The gain's interval is the paired bootstrap of `eval.stats` over tasks. Wall times live in
timings.json and the report's last section only, so two runs of the same seed give the same summary.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from searchgym.eval.harness import EpisodeRecord, pass_rates
from searchgym.eval.stats import Interval, paired_bootstrap
from searchgym.io import atomic_write_text, write_json

TRAC_KEYS = (  # metrics.jsonl keys of the TRAC diagnostics the report tabulates (searchgym.advantage.estimators)
    ("trac/w_P/mean", "w_P (problem-level expertise)"),
    ("trac/w_D/mean", "w_D (teacher discrimination, AUC)"),
    ("trac/w_C/mean", "w_C (token-level confidence)"),
    ("trac/omega/mean", "omega = w_P w_D w_C"),
    ("trac/omega/frac_below_0.1", "share of tokens with omega < 0.1"),
    ("trac/teacher_reward/correct", "teacher reward, correct rollouts"),
    ("trac/teacher_reward/wrong", "teacher reward, wrong rollouts"),
    ("trac/teacher_fallback", "steps that fell back to GRPO (teacher unavailable)"),
    ("trac/teacher_fallback_share", "share of teacher batches that fell back, so far (stop above the limit)"),
)
NOT_TRAC = ("trac/teacher_fallback", "trac/teacher_fallback_share")  # logged by GRPO runs with a teacher too
CURVE_WINDOWS = (
    10  # the training curve in the report: mean success / reward over this many equal step windows
)


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _series(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    pts = [(m["step"], m[key]) for m in metrics if "step" in m and isinstance(m.get(key), int | float)]
    return [p[0] for p in pts], [float(p[1]) for p in pts]


def _train_steps(metrics: list[dict]) -> list[dict]:
    """The per-step rows of metrics.jsonl (the trainer's closing summary row has no reward)."""
    return [m for m in metrics if "reward" in m and "step" in m]


def compare(before: Sequence[EpisodeRecord], after: Sequence[EpisodeRecord], seed: int) -> dict[str, Any]:
    """Success before / after / gain with paired 95 % bootstrap intervals, overall and per level."""
    b, a = pass_rates(before), pass_rates(after)
    if set(b) != set(a):
        raise ValueError("the before and after evaluations must cover the same tasks")
    level = {r.task_id: r.level for r in before}
    ids = sorted(b)

    def block(sel: list[str]) -> dict[str, Any]:
        ib, ia, gain = paired_bootstrap([b[t] for t in sel], [a[t] for t in sel], seed=seed)
        return {"n": len(sel), "before": ib.to_dict(), "after": ia.to_dict(), "gain": gain.to_dict()}

    levels = sorted({level[t] for t in ids})
    return {
        "overall": block(ids),
        "by_level": {str(lv): block([t for t in ids if level[t] == lv]) for lv in levels},
        "reward": {
            "before": _mean([r.episode.reward for r in before]),
            "after": _mean([r.episode.reward for r in after]),
        },
    }


def training_curve(metrics: list[dict]) -> list[dict[str, Any]]:
    rows = _train_steps(metrics)
    if not rows:
        return []
    size = -(-len(rows) // CURVE_WINDOWS)  # ceil
    out = []
    for i in range(0, len(rows), size):
        w = rows[i : i + size]
        out.append(
            {
                "steps": f"{w[0]['step']}-{w[-1]['step']}",
                "success": _mean([float(m.get("searchgym/success", 0.0)) for m in w]),
                "reward": _mean([float(m["reward"]) for m in w]),
                "stage": int(w[-1].get("searchgym/stage", 0)),
            }
        )
    return out


def trac_table(metrics: list[dict]) -> dict[str, dict[str, float]]:
    """For every TRAC diagnostic logged: its mean over all steps and over the last fifth of the steps."""
    out = {}
    for key, _ in TRAC_KEYS:
        _, ys = _series(_train_steps(metrics), key)
        if ys:
            out[key] = {"all": _mean(ys), "last": _mean(ys[-max(1, len(ys) // 5) :]), "steps": len(ys)}
    return out


def has_trac(metrics: list[dict]) -> bool:
    return any(k.startswith("trac/") and k not in NOT_TRAC for m in metrics for k in m)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}"


def _ci(i: dict[str, float]) -> str:
    return f"{_pct(i['mean'])} [{_pct(i['low'])}, {_pct(i['high'])}]"


def _gain(i: dict[str, float]) -> str:
    return f"{100 * i['mean']:+.1f} [{100 * i['low']:+.1f}, {100 * i['high']:+.1f}]"


def write_report(
    out: Path,
    before: Sequence[EpisodeRecord],
    after: Sequence[EpisodeRecord],
    metrics: list[dict],
    timings: dict[str, float],
    cfg: Any,
    rl_name: str,
    incomplete: list[str],
) -> Path:
    """report.md, summary.json, timings.json and the figures; returns the report's path."""
    cmp = compare(before, after, cfg.seed)
    steps = max((m["step"] for m in _train_steps(metrics)), default=0)
    curve, trac = training_curve(metrics), trac_table(metrics)
    summary = {
        "complete": not incomplete,
        "incomplete": incomplete,
        "held_out_tasks": cmp["overall"]["n"],
        **cmp,
        "rl": {"estimator": rl_name, "steps": steps, "planned_steps": cfg.rl_max_steps},
        "training_curve": curve,
        "trac": trac,
    }
    write_json(out / "summary.json", summary)
    write_json(out / "timings.json", timings)
    _training_figure(out / "training.png", metrics, rl_name)
    _levels_figure(out / "levels.png", cmp["by_level"])
    trac_png = has_trac(metrics)
    if trac_png:
        _trac_figure(out / "trac.png", metrics)
    else:
        (out / "trac.png").unlink(missing_ok=True)  # left by an earlier run with a teacher
    path = out / "report.md"
    atomic_write_text(path, markdown(summary, cfg, timings, trac_png))
    return path


def markdown(summary: dict[str, Any], cfg: Any, timings: dict[str, float], trac_png: bool) -> str:
    o, rl = summary["overall"], summary["rl"]
    b, a, g = (Interval(**o[k]) for k in ("before", "after", "gain"))
    verdict = (
        "after RL is higher, the interval excludes 0"
        if g.low > 0
        else "the interval includes 0: no clear gain"
        if g.high >= 0
        else "after RL is lower"
    )
    title = "# SearchGym demo report"
    if summary["incomplete"]:
        title += " — INCOMPLETE: " + "; ".join(summary["incomplete"])
    lines = [
        title,
        "",
        f"**Held-out success before RL: {b.mean:.1%}. After RL: {a.mean:.1%}** (gain {100 * g.mean:+.1f} points, "
        f"95 % paired bootstrap interval [{100 * g.low:+.1f}, {100 * g.high:+.1f}]: {verdict}) on "
        f"{summary['held_out_tasks']} held-out test tasks, greedy decoding, success = the env's rule "
        f"(`{cfg.train.env.success_metric}` of the answer).",
        "",
        f"Mean held-out reward: {summary['reward']['before']:.3f} before, {summary['reward']['after']:.3f} after. "
        f"RL ran {rl['steps']} {rl['estimator']} steps (of {rl['planned_steps']} planned).",
        "",
        "## Per level (percent, 95 % bootstrap intervals over tasks)",
        "",
        "| level | tasks | before | after | gain |",
        "| --- | ---: | ---: | ---: | ---: |",
        *[
            f"| {lv} | {s['n']} | {_ci(s['before'])} | {_ci(s['after'])} | {_gain(s['gain'])} |"
            for lv, s in summary["by_level"].items()
        ],
        "",
        "![per-level success](levels.png)",
        "",
        "## Training curve (training rollouts, mean over step windows)",
        "",
        "| steps | curriculum stage | success | mean reward |",
        "| --- | ---: | ---: | ---: |",
        *[
            f"| {w['steps']} | {w['stage']} | {w['success']:.3f} | {w['reward']:.3f} |"
            for w in summary["training_curve"]
        ],
        "",
        "![training curves](training.png)",
        "",
    ]
    if summary["trac"]:
        labels = dict(TRAC_KEYS)
        lines += [
            "## TRAC diagnostics (training steps)",
            "",
            "| diagnostic | mean, all steps | mean, last fifth | steps logged |",
            "| --- | ---: | ---: | ---: |",
            *[
                f"| {labels[k]} | {v['all']:.3f} | {v['last']:.3f} | {v['steps']} |"
                for k, v in summary["trac"].items()
            ],
            "",
            *(["![TRAC diagnostics](trac.png)", ""] if trac_png else []),
        ]
    lines += [
        "Every episode: `eval_before/`, `eval_after/` (trajectories.jsonl, report.md); browse them and the RL "
        "rollouts with `searchgym view` on this directory.",
        "",
        "## Configuration",
        "",
        "```yaml",
        cfg.to_yaml().rstrip(),
        "```",
        "",
        "## Wall times (seconds from start; not part of the result)",
        "",
        *[f"- {k}: {v}" for k, v in timings.items()],
        "",
    ]
    return "\n".join(lines)


def _trailing_mean(ys: list[float], window: int) -> list[float]:
    return [_mean(ys[max(0, i + 1 - window) : i + 1]) for i in range(len(ys))]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _training_figure(path: Path, metrics: list[dict], rl_name: str) -> None:
    plt = _plt()
    rows = _train_steps(metrics)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for key, label, color in (
        ("searchgym/success", "success (train rollouts)", "tab:blue"),
        ("reward", "mean reward", "tab:orange"),
    ):
        xs, ys = _series(rows, key)
        ax.plot(xs, ys, color=color, alpha=0.25, linewidth=0.8)  # one step = a few groups: very noisy
        ax.plot(xs, _trailing_mean(ys, 20), color=color, linewidth=2, label=f"{label}, mean of last 20 steps")
    xs, ys = _series(rows, "searchgym/stage")
    promoted = [x for x, prev, cur in zip(xs[1:], ys, ys[1:], strict=False) if cur > prev]
    for i, x in enumerate(promoted):
        ax.axvline(x, color="grey", linestyle="--", linewidth=1, label="promotion" if i == 0 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(f"{rl_name} training")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _levels_figure(path: Path, by_level: dict[str, dict[str, Any]]) -> None:
    plt = _plt()
    levels = list(by_level)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    width = 0.38
    for j, (stage, label) in enumerate((("before", "before RL"), ("after", "after RL"))):
        xs = [i + (j - 0.5) * width for i in range(len(levels))]
        iv = [by_level[lv][stage] for lv in levels]
        err = [[x["mean"] - x["low"] for x in iv], [x["high"] - x["mean"] for x in iv]]
        ax.bar(xs, [x["mean"] for x in iv], width, yerr=err, capsize=3, label=label)
    ax.set_xticks(list(range(len(levels))), [f"level {lv}" for lv in levels])
    ax.set_ylabel("held-out success (95 % CI)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _trac_figure(path: Path, metrics: list[dict]) -> None:
    plt = _plt()
    rows = _train_steps(metrics)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    panels = (
        (axes[0], "calibration weights", [(k, k.removeprefix("trac/")) for k, _ in TRAC_KEYS[:5]]),
        (
            axes[1],
            "mean teacher token reward",
            [("trac/teacher_reward/correct", "correct rollouts"), ("trac/teacher_reward/wrong", "wrong")],
        ),
    )
    for ax, title, keys in panels:
        for key, label in keys:
            xs, ys = _series(rows, key)
            if xs:
                ax.plot(xs, ys, marker=".", label=label)
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
