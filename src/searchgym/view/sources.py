"""What `searchgym view PATH` opens: the runs inside PATH, their records, the world and task set behind them.

| PATH holds | runs |
| --- | --- |
| `trajectories.jsonl` (+ `summary.json`) — `searchgym eval` output | one eval run |
| `rollouts.jsonl` and/or `metrics.jsonl` — a `searchgym train` output_dir | one training run |
| `world/` and `eval_before*` / `eval_after*` / `rl/` — `searchgym demo --out` | before, after, rl |

JSON Lines files are indexed once (byte offset + list row per line) and one record is parsed again only when its
episode is opened, so a 10,000-episode eval loads in seconds and stays small in memory. A training run's
`rollouts.jsonl` may still be growing: new complete lines are picked up on the next request.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from searchgym.errors import SearchGymError
from searchgym.view.records import Row, TaskInfo, row

ROLLOUTS_FILE = "rollouts.jsonl"
TRAJECTORIES_FILE = "trajectories.jsonl"
_SLUG = re.compile(r"[^a-z0-9_-]+")


class ViewError(SearchGymError, ValueError):
    """A path the viewer cannot open; the message names it and what to pass instead."""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ViewError(f"{path} cannot be read as JSON ({e}); is the run complete?") from e


@dataclass
class Run:
    """One run's episodes. `rows` are in file order; `record(i)` re-reads episode i in full."""

    id: str  # URL-safe name, unique within the viewer
    label: str
    kind: str  # "eval" | "train" | "demo-eval"
    path: Path  # the records file
    meta: dict[str, Any] = field(default_factory=dict)
    world: Path | None = None
    task_set: Path | None = None
    note: str = ""
    rows: list[Row] = field(default_factory=list)
    _offsets: list[int] = field(default_factory=list)
    _end: int = 0  # bytes of the records file indexed so far
    _inline: list[dict[str, Any]] | None = None  # demo JSON rows, small enough to keep
    _tasks: dict[str, TaskInfo] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def success_rule(self) -> str:
        return str((self.meta.get("config") or {}).get("success") or "em")

    @property
    def env_config(self) -> dict[str, Any]:
        return dict((self.meta.get("config") or {}).get("env") or {})

    def attach_tasks(self, tasks: dict[str, TaskInfo]) -> None:
        """Fill what records lack (split, hops, question) from the task set; call before the first refresh."""
        self._tasks = tasks
        if self._inline is not None:
            self.rows = [self._row(i, r) for i, r in enumerate(self._inline)]

    def _row(self, i: int, rec: dict[str, Any]) -> Row:
        tid = str(rec.get("task_id") or (rec.get("trajectory") or {}).get("task_id") or "")
        default_split = "train" if self.kind == "train" else str(self.meta.get("split") or "")
        return row(i, rec, self._tasks.get(tid), self.success_rule, default_split)

    def refresh(self) -> None:
        """Index lines appended since the last call (a training run writes while it is viewed)."""
        if self._inline is not None or not self.path.exists():
            return
        with self._lock:
            size = self.path.stat().st_size
            if size == self._end:
                return
            if size < self._end:  # rewritten (a resumed run truncates): start over
                self.rows, self._offsets, self._end = [], [], 0
            with open(self.path, "rb") as f:
                f.seek(self._end)
                pos = self._end
                for line in f:
                    if not line.endswith(b"\n"):
                        break  # a line still being written
                    if line.strip():
                        try:
                            rec = json.loads(line)
                        except json.JSONDecodeError as e:
                            n = len(self._offsets) + 1
                            raise ViewError(f"{self.path}: record {n} is not valid JSON ({e.msg})") from e
                        self._offsets.append(pos)
                        self.rows.append(self._row(len(self.rows), rec))
                    pos += len(line)
                self._end = pos

    def record(self, i: int) -> dict[str, Any]:
        if self._inline is not None:
            return self._inline[i]
        with open(self.path, "rb") as f:
            f.seek(self._offsets[i])
            return json.loads(f.readline())


def slug(text: str) -> str:
    return _SLUG.sub("-", text.lower()).strip("-")[:48].strip("-") or "run"


def _eval_run(directory: Path, run_id: str, label: str) -> Run:
    summary = _read_json(directory / "summary.json") if (directory / "summary.json").exists() else {}
    meta = summary.get("meta", {}) if isinstance(summary, dict) else {}
    return Run(run_id, label, "eval", directory / TRAJECTORIES_FILE, meta=meta)


def _train_run(directory: Path, run_id: str, label: str) -> Run:
    meta: dict[str, Any] = {}
    cfg = directory / "config.yaml"
    if cfg.exists():
        try:
            meta["config"] = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as e:
            raise ViewError(f"{cfg} is not valid YAML ({e})") from e
    run = Run(run_id, label, "train", directory / ROLLOUTS_FILE, meta=meta)
    if not run.path.exists():
        run.note = f"{run.path} does not exist yet: this run recorded no rollouts (older trainer, or none logged yet)"
    return run


def _demo_eval(path: Path, run_id: str, label: str) -> Run:
    data = _read_json(path)
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list):
        raise ViewError(f"{path} has no 'rows' list; it is not a demo evaluation")
    run = Run(run_id, label, "demo-eval", path, meta={"split": "test"})
    run._inline = [r for r in rows if isinstance(r, dict)]
    run.note = "a demo evaluation without trajectories: episodes show their outcome only"
    run.rows = [run._row(i, r) for i, r in enumerate(run._inline)]
    return run


def is_eval_dir(p: Path) -> bool:
    return (p / TRAJECTORIES_FILE).is_file()


def is_train_dir(p: Path) -> bool:
    return (p / ROLLOUTS_FILE).is_file() or (p / "metrics.jsonl").is_file()


def is_demo_dir(p: Path) -> bool:
    return (p / "world").is_dir() and any(
        (p / n).exists() for n in ("eval_before", "eval_before.json", "eval_after", "eval_after.json", "rl")
    )


def discover(path: Path, prefix: str = "") -> tuple[list[Run], tuple[str, str] | None]:
    """The runs inside `path` and the pair to compare by default (demo: before vs after)."""
    path = Path(path)
    if not path.exists():
        raise ViewError(f"{path} does not exist; pass an eval, training-run or demo directory")
    if path.is_file() and path.name in (TRAJECTORIES_FILE, ROLLOUTS_FILE, "summary.json", "metrics.jsonl"):
        path = path.parent
    if not path.is_dir():
        raise ViewError(f"{path} is not a directory; pass an eval, training-run or demo directory")
    name = prefix or slug(path.name)
    if is_eval_dir(path):
        return [_eval_run(path, name, path.name)], None
    if is_train_dir(path):
        return [_train_run(path, name, path.name)], None
    if is_demo_dir(path):
        runs = []
        for stage in ("before", "after"):
            d, f = path / f"eval_{stage}", path / f"eval_{stage}.json"
            rid = f"{prefix}-{stage}" if prefix else stage
            if is_eval_dir(d):
                runs.append(_eval_run(d, rid, f"eval {stage} RL"))
            elif f.is_file():
                runs.append(_demo_eval(f, rid, f"eval {stage} RL"))
        if (path / "rl").is_dir():
            runs.append(_train_run(path / "rl", f"{prefix}-rl" if prefix else "rl", "RL training"))
        ids = [r.id for r in runs]
        pair = (ids[0], ids[1]) if len(ids) >= 2 and runs[1].kind != "train" else None
        return runs, pair
    raise ViewError(
        f"{path} is not an eval directory (no {TRAJECTORIES_FILE}), a training run (no {ROLLOUTS_FILE} or "
        "metrics.jsonl) or a demo directory (no world/ with eval_before/eval_after/rl); pass one of those"
    )


def locate_world(run: Run, root: Path, flag: Path | None) -> Path | None:
    """--world, else the run's own record of it (eval meta, training config), else the demo layout."""
    candidates: list[Path] = []
    if flag is not None:
        return Path(flag)
    meta_world = run.meta.get("world") or ((run.meta.get("config") or {}).get("data") or {}).get("world")
    if meta_world:
        w = Path(str(meta_world))
        candidates += [w] if w.is_absolute() else [w, root / w, root.parent / w, run.path.parent / w]
    candidates += [root / "world", run.path.parent.parent / "world", root.parent / "world"]
    return next((c for c in candidates if (c / "manifest.json").is_file()), None)


def locate_task_set(run: Run, world: Path | None, root: Path) -> Path | None:
    """The task set the run used, when it can be told: training config, eval meta, demo layout."""
    cfg_tasks = ((run.meta.get("config") or {}).get("data") or {}).get("tasks")
    options: list[Path] = []
    if cfg_tasks:
        t = Path(str(cfg_tasks))
        options += [t] if t.is_absolute() else [t, root / t, root.parent / t]
    if world is not None:
        for name in (run.meta.get("task_set"), run.meta.get("tasks"), "demo", "default"):
            if name and "/" not in str(name) and str(name) not in (".", ".."):
                options.append(world / "tasks" / str(name))
    for o in options:
        o = o.parent if o.name == "tasks.jsonl" else o
        if (o / "tasks.jsonl").is_file():
            return o
    return None
