"""Write an evaluation directory: trajectories.jsonl, summary.json, report.md and PNG charts (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from searchgym.eval.harness import EpisodeRecord
from searchgym.io import atomic_dir, write_json, write_jsonl

GROUP_TITLES = {"type": "task type", "hops": "hops", "level": "level", "source": "data source"}


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _table(groups: dict[str, dict[str, float]], key: str) -> list[str]:
    lines = [
        f"| {key} | n | success | EM | F1 | cover-EM | reward |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, s in groups.items():
        cells = " | ".join(_pct(s[k]) for k in ("success", "em", "f1", "cover_em", "reward"))
        lines.append(f"| {name} | {s['n']} | {cells} |")
    return lines


def markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    o = summary["overall"]
    passes = " · ".join(f"{k} {_pct(v)}" for k, v in summary.items() if k.startswith("pass@"))
    a = summary["actions"]
    lines = [
        f"# Evaluation: {meta.get('model', '?')}",
        "",
        f"Tasks: `{meta.get('tasks', '?')}` (split `{meta.get('split') or 'all'}`), {summary['tasks']} tasks × "
        f"{summary['samples']} sample(s) = {summary['episodes']} episodes; protocol `{meta.get('protocol')}`; "
        f"success = {meta.get('success_rule', '?')}.",
        *([f"World `{meta['world']}`, task set `{meta['task_set']}`."] if meta.get("world") else []),
        "",
        "## Overall (percent)",
        "",
        "| success | EM | F1 | cover-EM | reward | evidence recall | invalid-format episodes | answered |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {_pct(o['success'])} | {_pct(o['em'])} | {_pct(o['f1'])} | {_pct(o['cover_em'])} | {_pct(o['reward'])} | "
        f"{_pct(summary['evidence_recall'])} | {_pct(summary['invalid_format_rate'])} | "
        f"{_pct(summary['answered_rate'])} |",
        "",
        f"{passes}. Per episode: {a['turns']:.2f} turns, {a['searches']:.2f} searches, {a['accesses']:.2f} "
        f"accesses; invalid turns {_pct(summary['invalid_turn_rate'])} %. Endings: "
        + ", ".join(f"{k} {v}" for k, v in summary["done_reasons"].items())
        + ".",
    ]
    for key, title in GROUP_TITLES.items():
        lines += ["", f"## By {title}", "", *_table(summary["by"][key], key), "", f"![{title}](by_{key}.png)"]
    lines += ["", "![actions](actions.png)", ""]
    return "\n".join(lines)


def _bar_chart(path: Path, groups: dict[str, dict[str, float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(names) + 2), 3.2))
    metrics = ("success", "em", "f1", "cover_em")
    width = 0.8 / len(metrics)
    for j, metric in enumerate(metrics):
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(names))]
        ax.bar(xs, [100 * groups[n][metric] for n in names], width, label=metric)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("percent")
    ax.set_ylim(0, 100)
    ax.set_title(f"accuracy by {title}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def _actions_chart(path: Path, records: Sequence[EpisodeRecord]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    top = max([r.episode.turns for r in records] + [1])
    bins = [x - 0.5 for x in range(top + 2)]
    for key in ("turns", "searches", "accesses"):
        ax.hist([getattr(r.episode, key) for r in records], bins=bins, alpha=0.5, label=key)
    ax.set_xlabel("per episode")
    ax.set_ylabel("episodes")
    ax.set_title("actions per episode")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def write_eval_dir(
    out: Path,
    records: Sequence[EpisodeRecord],
    summary: dict[str, Any],
    meta: dict[str, Any],
    overwrite: bool,
) -> Path:
    """Everything or nothing: the directory appears in one rename once every file is written. `meta` comes from
    `harness.eval_meta`."""
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        write_jsonl(tmp / "trajectories.jsonl", (r.to_dict() for r in records))
        write_json(tmp / "summary.json", {"meta": meta, **summary})
        for key, title in GROUP_TITLES.items():
            _bar_chart(tmp / f"by_{key}.png", summary["by"][key], title)
        _actions_chart(tmp / "actions.png", records)
        (tmp / "report.md").write_text(markdown(summary, meta), encoding="utf-8")
    return Path(out)
