"""What the agent loop and the tools share inside one verl worker process: search engines (one per world or server,
loaded once), the worker threads that run the env and teacher off verl's event loop, and the row's task and env
config. verl builds a new agent loop object for every sample, so these live at module level."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from searchgym.env.config import EnvConfig
from searchgym.index.base import SearchEngine
from searchgym.types import Task

T = TypeVar("T")
# episodes of one worker that can search / score at once; the rest wait for a thread [ours]
DEFAULT_THREADS = 64

_lock = threading.Lock()
_engines: dict[tuple[str, str], SearchEngine] = {}
_pool: ThreadPoolExecutor | None = None


def engine(world: str = "", endpoint: str = "") -> SearchEngine:
    """The search engine of a `searchgym serve` endpoint (HTTP) or else of a world directory (in-process index)."""
    if not endpoint and not world:
        raise ValueError(
            "no search engine: the row's extra_info.world is empty and the agent loop / tool config sets neither "
            "`world` nor `endpoint`; export with `searchgym tasks export` or set one of them"
        )
    key = (endpoint, "" if endpoint else world)
    with _lock:
        if key not in _engines:
            if endpoint:
                from searchgym.index.client import HttpSearchEngine

                _engines[key] = HttpSearchEngine(endpoint)
            else:
                from searchgym.index.build import load_engine

                _engines[key] = load_engine(world)
        return _engines[key]


async def in_thread(fn: Callable[..., T], *args: Any, threads: int = DEFAULT_THREADS) -> T:
    """Run blocking work (search, tokenising, teacher requests) on a worker thread, so verl's event loop keeps
    serving the other episodes."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="searchgym")
    return await asyncio.get_running_loop().run_in_executor(_pool, fn, *args)


def row_task(info: dict[str, Any]) -> Task:
    """The task a row carries (`extra_info.task`, JSON, as `searchgym tasks export --format verl` writes it)."""
    raw = (info or {}).get("task")
    if not isinstance(raw, str) or not raw:
        raise ValueError(
            "the row has no extra_info.task; build the parquet with `searchgym tasks export --format verl`"
        )
    return Task.from_dict(json.loads(raw))


def row_env(info: dict[str, Any], overrides: dict[str, Any] | None = None) -> EnvConfig:
    """The env config a row carries (`extra_info.env`, JSON), with the agent loop's overrides."""
    raw = (info or {}).get("env") or "{}"
    return EnvConfig.from_dict({**json.loads(raw), **(overrides or {})}, where="env")
