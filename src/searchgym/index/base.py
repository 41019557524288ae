"""The search contract every backend and the HTTP client implement, and the backend registry.

An agent acts through two tools: `search(query, k)` returns ranked hits, `access(url)` returns a page.
Backends that live in a world's index directory subclass `IndexBackend` and are registered by name with the module
that defines them (`BACKENDS`), so a config picks one with a string and the module is imported on first use.
"""

from __future__ import annotations

import importlib
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Self

from searchgym.config import YamlConfig
from searchgym.types import Document, SearchHit


class SearchEngine(ABC):
    """Ranked search and access by URL over one corpus."""

    name: str = "abstract"

    @abstractmethod
    def search(self, query: str, k: int = 5) -> list[SearchHit]: ...

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]:
        return [self.search(q, k) for q in queries]

    @abstractmethod
    def access(self, url: str) -> Document | None:
        """The document at `url`, or None if the URL is not in the corpus."""

    def __len__(self) -> int:
        """Number of documents (0 when unknown, e.g. a remote service)."""
        return 0

    def close(self) -> None:  # noqa: B027 - optional hook
        pass


class LockedEngine(SearchEngine):
    """`engine` shared between threads: one call at a time (engines keep per-query caches and are not thread-safe).
    Searches take microseconds to a millisecond, so sessions waiting on the lock barely notice it."""

    def __init__(self, engine: SearchEngine):
        self.engine = engine
        self.name = engine.name
        self._lock = threading.Lock()

    def search(self, query: str, k: int = 5) -> list[SearchHit]:
        with self._lock:
            return self.engine.search(query, k)

    def batch_search(self, queries: list[str], k: int = 5) -> list[list[SearchHit]]:
        with self._lock:
            return self.engine.batch_search(queries, k)

    def access(self, url: str) -> Document | None:
        with self._lock:
            return self.engine.access(url)

    def __len__(self) -> int:
        return len(self.engine)

    def close(self) -> None:
        self.engine.close()


class IndexBackend(SearchEngine):
    """A search engine with an on-disk index: built once into a directory, loaded fast."""

    config_class: type[YamlConfig]

    @classmethod
    @abstractmethod
    def from_documents(cls, docs: list[Document], config: Any = None) -> Self:
        """An in-memory engine over `docs`."""

    @classmethod
    @abstractmethod
    def build_into(cls, docs: list[Document], directory: Path, config: Any = None) -> None:
        """Build the index over `docs` and write its files into `directory` (which exists and is empty)."""

    @classmethod
    @abstractmethod
    def load(cls, directory: Path, **overrides: Any) -> Self:
        """Open an index written by `build_into`; `overrides` change config fields (e.g. fuzzy=False)."""


# name -> "module:Class"; the module is imported when the backend is first asked for
BACKENDS: dict[str, str] = {
    "bm25s": "searchgym.index.bm25s_engine:Bm25sEngine",
    "tantivy": "searchgym.index.tantivy_engine:TantivyEngine",
}


def register_backend(name: str, target: str) -> None:
    """Register a backend class by its import path, e.g. register_backend("mine", "mypkg.engine:MyEngine")."""
    if name in BACKENDS and BACKENDS[name] != target:
        raise ValueError(f"search backend {name!r} is already registered as {BACKENDS[name]}")
    BACKENDS[name] = target


def backend_class(name: str) -> type[IndexBackend]:
    if name not in BACKENDS:
        raise ValueError(f"unknown search backend {name!r}; choose one of {sorted(BACKENDS)}")
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)
