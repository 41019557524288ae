"""Task sets on disk: WORLD/tasks/<name>/ with tasks.jsonl and manifest.json.

The manifest records the synthesis config, counts per type/level/split, the sha256 of tasks.jsonl and the world's
content hash; `load_tasks` refuses a task set whose world has changed since it was built. A task set's name is one
safe path component (`searchgym.io.safe_name`), so no name can reach outside WORLD/tasks/ or replace it.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from searchgym.errors import SearchGymError
from searchgym.io import atomic_dir, read_json, read_jsonl, safe_name, sha256_file, write_json, write_jsonl
from searchgym.types import Task

FORMAT_VERSION = 1
MANIFEST_KEYS = ("name", "num_tasks", "tasks_sha256", "world_content_hash")


class TaskSetError(SearchGymError, ValueError):
    """A task set that cannot be used; the message says why and what to do."""


def task_set_dir(world_dir: str | Path, name: str) -> Path:
    """WORLD/tasks/<name>; raises InputError for a name that is not one safe path component."""
    return Path(world_dir) / "tasks" / safe_name(name, "task set name")


def rebuild_command(path: Path) -> str:
    return f"`searchgym tasks build {path.parent.parent} --name {path.name} --overwrite`"


def counts(tasks: list[Task]) -> dict[str, dict[str, int]]:
    return {
        "type": dict(sorted(Counter(t.type for t in tasks).items())),
        "level": {str(k): v for k, v in sorted(Counter(t.level for t in tasks).items())},
        "split": dict(sorted(Counter(t.split for t in tasks).items())),
        "type_level": dict(sorted(Counter(f"{t.type}/{t.level}" for t in tasks).items())),
    }


def _world_hash(world_dir: Path) -> str:
    manifest = world_dir / "manifest.json"
    if not manifest.exists():
        raise TaskSetError(
            f"{world_dir} is not a world directory (no manifest.json); build one with `searchgym world build`"
        )
    data = read_json(manifest, f"rebuild the world with `searchgym world build {world_dir} --overwrite`")
    if not isinstance(data, dict) or not isinstance(data.get("content_hash"), str):
        raise TaskSetError(f"{manifest} has no content_hash; rebuild the world with `searchgym world build`")
    return data["content_hash"]


def save_tasks(
    tasks: list[Task],
    world_dir: str | Path,
    name: str,
    config: dict[str, Any],
    extra: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the task set atomically (a complete directory or nothing); returns its path."""
    world_dir = Path(world_dir)
    final = task_set_dir(world_dir, name)
    with atomic_dir(final, overwrite=overwrite, marker="manifest.json") as tmp:
        write_jsonl(tmp / "tasks.jsonl", (t.to_dict() for t in tasks))
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": name,
            "world_content_hash": _world_hash(world_dir),
            "config": config,
            "num_tasks": len(tasks),
            "counts": counts(tasks),
            "tasks_sha256": sha256_file(tmp / "tasks.jsonl"),
            **(extra or {}),
        }
        write_json(tmp / "manifest.json", manifest)
    return final


def resolve(path: str | Path) -> Path:
    """Accept a task set dir or its tasks.jsonl."""
    p = Path(path)
    p = p.parent if p.name == "tasks.jsonl" else p
    if not (p / "tasks.jsonl").exists() or not (p / "manifest.json").exists():
        raise TaskSetError(
            f"{p} is not a task set (expected tasks.jsonl and manifest.json); build one with "
            "`searchgym tasks build WORLD --name NAME`"
        )
    return p


def load_manifest(path: str | Path) -> dict[str, Any]:
    p = resolve(path)
    manifest = read_json(p / "manifest.json", f"rebuild the task set with {rebuild_command(p)}")
    missing = [k for k in MANIFEST_KEYS if not isinstance(manifest, dict) or k not in manifest]
    if missing:
        raise TaskSetError(
            f"{p / 'manifest.json'} lacks {missing}; rebuild the task set with {rebuild_command(p)}"
        )
    return manifest


def world_of(path: str | Path) -> Path:
    """The world directory a task set lives in (WORLD/tasks/<name>)."""
    return resolve(path).parent.parent


def load_tasks(path: str | Path, check_world: bool = True) -> list[Task]:
    """Read a task set; raise TaskSetError if tasks.jsonl is damaged or the world changed under it."""
    p = resolve(path)
    manifest = load_manifest(p)
    if sha256_file(p / "tasks.jsonl") != manifest["tasks_sha256"]:
        raise TaskSetError(
            f"{p / 'tasks.jsonl'} does not match its manifest (damaged or edited); rebuild with {rebuild_command(p)}"
        )
    if check_world:
        world_dir = p.parent.parent
        if _world_hash(world_dir) != manifest["world_content_hash"]:
            raise TaskSetError(
                f"the world {world_dir} changed since task set {p.name!r} was built; its answers "
                f"may no longer hold. Rebuild with {rebuild_command(p)}"
            )
    return [Task.from_dict(d) for d in read_jsonl(p / "tasks.jsonl", f"rebuild with {rebuild_command(p)}")]
