"""The index inside a world directory: build it once, load it fast, refuse it when stale.

WORLD/index/<backend>/ holds the backend's files, the document store and `index.json`, which records the
sha256 of the corpus.jsonl it was built from. Loading compares that hash with the corpus on disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from searchgym import __version__
from searchgym.index.base import IndexBackend, SearchEngine, backend_class
from searchgym.io import atomic_dir, read_jsonl, sha256_file, write_json
from searchgym.types import Document

# Chosen by bench/bench_search.py on a 100k-document world: bm25s (our exact numpy top-k) answers single
# queries faster than tantivy (median 0.11 ms vs 0.25 ms) and verifies edges faster; see docs/search.md.
DEFAULT_BACKEND = "bm25s"
INDEX_FORMAT = 2


class SearchIndexError(RuntimeError):
    """The index of a world cannot be used; the message says which command fixes it."""


class IndexMissingError(SearchIndexError):
    pass


class StaleIndexError(SearchIndexError):
    pass


def engine_class(backend: str | None) -> type[IndexBackend]:
    return backend_class(backend or DEFAULT_BACKEND)


def _build_command(world_dir: Path, backend: str) -> str:
    return f"searchgym index build {world_dir} --backend {backend}"


def index_dir(world_dir: Path, backend: str | None = None) -> Path:
    return Path(world_dir) / "index" / (backend or DEFAULT_BACKEND)


def _corpus_stat(corpus: Path) -> dict[str, int]:
    st = os.stat(corpus)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_documents(corpus: Path) -> list[Document]:
    docs = []
    for n, row in enumerate(read_jsonl(corpus), 1):
        try:
            docs.append(Document(**row))
        except TypeError as e:
            raise ValueError(f"{corpus}:{n}: not a Document record ({e})") from e
    return docs


def _is_fresh(directory: Path, corpus: Path) -> tuple[bool, str]:
    """(fresh, reason). The stat shortcut skips hashing an unchanged file (same size and mtime)."""
    try:
        manifest = json.loads((directory / "index.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False, "its index.json is missing or damaged"
    if manifest.get("format") != INDEX_FORMAT:
        return False, f"it has index format {manifest.get('format')}, this SearchGym reads {INDEX_FORMAT}"
    if manifest.get("corpus_stat") == _corpus_stat(corpus):
        return True, ""
    if manifest.get("corpus_sha256") != sha256_file(corpus):
        return False, "corpus.jsonl changed since it was built (sha256 differs)"
    return True, ""


def build_index(
    world_dir: str | Path, backend: str | None = None, overwrite: bool = False, progress: bool = True
) -> Path:
    """Build WORLD/index/<backend>/ from WORLD/corpus.jsonl (atomically) and return its path.

    An existing index that matches the corpus is kept unless `overwrite`; a stale one is rebuilt.
    """
    from rich.console import Console

    world_dir, backend = Path(world_dir), backend or DEFAULT_BACKEND
    cls = engine_class(backend)
    corpus = world_dir / "corpus.jsonl"
    if not corpus.is_file():
        raise FileNotFoundError(
            f"{corpus} not found; is {world_dir} a world directory (searchgym world build)?"
        )
    final = index_dir(world_dir, backend)
    if final.exists() and not overwrite and _is_fresh(final, corpus)[0]:
        return final
    console = Console(stderr=True, quiet=not progress)
    with console.status(f"reading {corpus}"):
        stat, digest = _corpus_stat(corpus), sha256_file(corpus)
        docs = read_documents(corpus)
    with (
        console.status(f"building the {backend} index over {len(docs):,} documents"),
        atomic_dir(final, True) as tmp,
    ):
        cls.build_into(docs, tmp)
        manifest = {
            "format": INDEX_FORMAT,
            "backend": backend,
            "searchgym_version": __version__,
            "num_docs": len(docs),
            "corpus_sha256": digest,
            "corpus_stat": stat,
        }
        write_json(tmp / "index.json", manifest)
    console.print(f"[green]built[/] {final} ({len(docs):,} documents)")
    return final


def load_engine(world_dir: str | Path, backend: str | None = None, **options) -> SearchEngine:
    """Open the world's index. `options` override the backend's config (e.g. fuzzy=False)."""
    world_dir, backend = Path(world_dir), backend or DEFAULT_BACKEND
    cls = engine_class(backend)
    corpus, directory = world_dir / "corpus.jsonl", index_dir(world_dir, backend)
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus} not found; is {world_dir} a world directory?")
    if not (directory / "index.json").is_file():
        raise IndexMissingError(
            f"{world_dir} has no {backend} index; run: {_build_command(world_dir, backend)}"
        )
    fresh, reason = _is_fresh(directory, corpus)
    if not fresh:
        raise StaleIndexError(
            f"the {backend} index of {world_dir} is stale: {reason}; run: {_build_command(world_dir, backend)}"
        )
    return cls.load(directory, **options)


def engine_from_documents(docs: list[Document], backend: str | None = None, **options) -> SearchEngine:
    """An in-memory engine over `docs` (tests, verification, external corpora)."""
    cls = engine_class(backend)
    return cls.from_documents(docs, cls.config_class.from_dict(options) if options else None)


def load_corpus_jsonl(path: str | Path) -> list[Document]:
    """Read a Search-R1 corpus ({"id", "contents"} lines; title = first line of contents)."""
    path, docs = Path(path), []
    for n, row in enumerate(read_jsonl(path), 1):
        if not isinstance(row, dict) or "id" not in row or not isinstance(row.get("contents"), str):
            raise ValueError(f'{path}:{n}: expected {{"id": ..., "contents": "<title>\\n<text>"}}')
        title, _, text = row["contents"].partition("\n")
        doc_id = str(row["id"])
        docs.append(Document(id=doc_id, url=f"corpus://{doc_id}", title=title.strip('"'), text=text))
    return docs
