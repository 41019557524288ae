"""Stages wired together, above the stages themselves: a verified world build uses the index's own engine."""

from __future__ import annotations

from pathlib import Path

from searchgym.index.base import SearchEngine
from searchgym.index.build import build_index, engine_class
from searchgym.world import build as world_build
from searchgym.world.store import World


def build_world(
    cfg: world_build.WorldConfig,
    out_dir: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    timings: dict[str, float] | None = None,
) -> World:
    """Build a world; with `cfg.verify` its index (`cfg.verify_backend`) is built inside it and every edge is
    verified against that engine, the one agents will search with. `timings` receives seconds per stage."""

    def engine_for(directory: Path) -> SearchEngine:
        built = build_index(directory, cfg.verify_backend, progress=progress)
        return engine_class(cfg.verify_backend).load(built)  # just built: its files need no second hashing

    return world_build.build_world(
        cfg, out_dir, overwrite, progress, engine_for if cfg.verify else None, timings
    )
