"""Ordered map over forked worker processes, for the heavy loops of building a world (articles, retrieval checks)
and its index (tokenising the corpus).

Workers are forked after the parent has built what they read (the graph, the article writer, the search engine),
so nothing is pickled on the way in: `fork_map(fn, spans, workers, **shared)` puts `shared` where `fn` finds it
(`shared()`), and only each span and its result cross a pipe. Results come back in span order, so the output never
depends on the number of workers.
"""

from __future__ import annotations

import multiprocessing
import signal
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")
_SHARED: dict[str, Any] = {}


def _default_sigterm() -> None:
    """Worker initializer: the default SIGTERM action, then SIGTERM unblocked (see `fork_map`)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})


def shared() -> dict[str, Any]:
    """What the running `fork_map` shares with its workers."""
    return _SHARED


def spans(n: int, size: int) -> list[tuple[int, int]]:
    """[start, end) ranges of at most `size` covering 0..n."""
    return [(s, min(s + size, n)) for s in range(0, n, max(size, 1))]


def fork_map(
    fn: Callable[[tuple[int, int]], T], items: list[tuple[int, int]], workers: int, **shared_values: Any
) -> Iterator[T]:
    """`fn(item)` for every item, in order; in `workers` forked processes when that is more than one and there
    is more than one item, else in this process."""
    if _SHARED:
        raise RuntimeError("fork_map is not reentrant")
    _SHARED.update(shared_values)
    try:
        if workers > 1 and len(items) > 1:
            # Workers get the default SIGTERM action back: a handler inherited from the parent (our temp-file
            # cleanup, Ray's) made them survive Pool.terminate(), and joining them then hung forever. They are
            # forked with SIGTERM blocked and unblock it once the default action is in place: a SIGTERM that
            # arrived before (CPython drops a signal caught between fork and its after-fork reset) stays pending
            # and then ends the worker, instead of being lost and leaving Pool.join() waiting forever.
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                pool = multiprocessing.get_context("fork").Pool(min(workers, len(items)), _default_sigterm)
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
            done = False
            try:
                yield from pool.imap(fn, items)
                done = True
            finally:
                if done:
                    pool.close()  # all results are in: workers exit on the pool's sentinels, no signal sent
                else:
                    pool.terminate()  # the caller stopped early (an error, or it left the loop)
                pool.join()
        else:
            for item in items:
                yield fn(item)
    finally:
        _SHARED.clear()
