"""The index inside a world directory: build it once, load it fast, refuse it when stale or damaged.

WORLD/index/<backend>/ holds the backend's files, the document store and `index.json`, which records the size
and sha256 of the corpus.jsonl it was built from and of every index file. Loading checks both, so an edited
corpus, a deleted or truncated file and a flipped byte are each caught and named before a query runs.
A file is hashed once, not on every load: `hashcache` remembers each sha256 by the file's stat key (a replaced,
rewritten or truncated file misses it and is hashed again). The corpus is hashed in the pass that reads it.
index.json holds no timestamps (the corpus is matched by content, not mtime): the same corpus gives the same
bytes for both backends (tantivy's segments are renumbered from random UUIDs, see tantivy_engine.py).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from searchgym import __version__
from searchgym.errors import SearchGymError
from searchgym.hashcache import HashCache
from searchgym.index.base import IndexBackend, SearchEngine, backend_class
from searchgym.io import atomic_dir, read_jsonl, write_json
from searchgym.types import Document

# Chosen by bench/bench_search.py on a 100k-document world: bm25s (our exact numpy top-k) answers single
# queries faster than tantivy (median 0.11 ms vs 0.25 ms) and verifies edges faster; see docs/search.md.
DEFAULT_BACKEND = "bm25s"
INDEX_FORMAT = 7  # 6: memory-mapped document fields and vocabulary; 7: surface words in the typo index


class SearchIndexError(SearchGymError, RuntimeError):
    """The index of a world cannot be used; the message says which command fixes it."""


class IndexMissingError(SearchIndexError):
    pass


class StaleIndexError(SearchIndexError):
    pass


class DamagedIndexError(SearchIndexError):
    """An index file is missing, truncated or was modified since the build."""


def engine_class(backend: str | None) -> type[IndexBackend]:
    return backend_class(backend or DEFAULT_BACKEND)


def _build_command(world_dir: Path, backend: str, overwrite: bool = False) -> str:
    return f"searchgym index build {world_dir} --backend {backend}" + (" --overwrite" if overwrite else "")


def index_dir(world_dir: Path, backend: str | None = None) -> Path:
    return Path(world_dir) / "index" / (backend or DEFAULT_BACKEND)


def read_documents(corpus: Path, digest=None) -> list[Document]:
    """The corpus's documents; `digest` (a hashlib object), if given, receives its bytes in the same pass."""
    docs = []
    for n, row in enumerate(read_jsonl(corpus, digest=digest), 1):
        try:
            docs.append(Document(**row))
        except TypeError as e:
            raise ValueError(f"{corpus}:{n}: not a Document record ({e})") from e
    return docs


def _read_corpus(corpus: Path, cache: HashCache) -> tuple[list[Document], dict[str, int | str]]:
    """(documents, size and sha256 record) from one read of the corpus: its hash is remembered (the world
    build hashed it while writing it) or computed in the pass that parses it."""
    before, known = os.stat(corpus), cache.lookup(corpus)
    digest = None if known else hashlib.sha256()
    docs = read_documents(corpus, digest)
    record = {"bytes": before.st_size, "sha256": known or digest.hexdigest()}
    if not known:
        cache.remember(corpus, record["sha256"], before)
    if os.stat(corpus).st_size != before.st_size:
        raise StaleIndexError(f"{corpus} changed while it was read; build the index again")
    return docs, record


def index_files(directory: Path, cache: HashCache | None = None) -> dict[str, dict[str, int | str]]:
    """Size and sha256 of every file of a built index (relative path -> record), index.json and lock files
    (tantivy's empty `.lock` files hold no data) excepted."""
    cache = cache or HashCache()
    paths = sorted(p for p in directory.rglob("*") if p.is_file())
    return {
        p.relative_to(directory).as_posix(): {"bytes": p.stat().st_size, "sha256": cache.sha256(p)}
        for p in paths
        if p.name != "index.json" and p.suffix != ".lock"
    }


def _problem(directory: Path, corpus: Path) -> tuple[type[SearchIndexError], str] | None:
    """Why the index in `directory` cannot serve `corpus` (error class, reason), or None if it can.

    Sizes are compared first (free, and they catch deleted and truncated files); then every file's sha256 (from
    the hash cache when its stat key is unchanged) is compared.
    """
    cache = HashCache()
    try:
        return _check(directory, corpus, cache)
    finally:
        cache.save()  # files found intact or not, their hashes stay true for their stat keys


def _check(directory: Path, corpus: Path, cache: HashCache) -> tuple[type[SearchIndexError], str] | None:
    meta = directory / "index.json"
    if not meta.is_file():
        return IndexMissingError, f"{meta} is missing"
    try:
        manifest = json.loads(meta.read_text(encoding="utf-8"))
        files, recorded = dict(manifest["files"]), dict(manifest["corpus"])
        for name, rec in files.items():
            if ".." in Path(name).parts or Path(name).is_absolute() or set(rec) != {"bytes", "sha256"}:
                raise ValueError(f"bad file record {name!r}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        return DamagedIndexError, f"{meta} is not a valid index manifest ({type(e).__name__}: {e})"
    if manifest.get("format") != INDEX_FORMAT:
        return (
            StaleIndexError,
            f"it has index format {manifest.get('format')}, this SearchGym reads {INDEX_FORMAT}",
        )
    for name, rec in files.items():
        path = directory / name
        if not path.is_file():
            return DamagedIndexError, f"{path} is missing"
        if path.stat().st_size != rec["bytes"]:
            return (
                DamagedIndexError,
                f"{path} has {path.stat().st_size} bytes, index.json records {rec['bytes']}",
            )
    if recorded.get("bytes") != corpus.stat().st_size or recorded.get("sha256") != cache.sha256(corpus):
        return StaleIndexError, "corpus.jsonl changed since it was built (size or sha256 differs)"
    for name, rec in files.items():
        if cache.sha256(directory / name) != rec["sha256"]:
            return DamagedIndexError, f"{directory / name} does not match its sha256 in index.json"
    return None


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
    console = Console(stderr=True, quiet=not progress)
    if final.exists() and not overwrite:
        problem = _problem(final, corpus)
        if problem is None:
            return final
        console.print(f"rebuilding the {backend} index: {problem[1]}")
    cache = HashCache()
    with console.status(f"reading {corpus}"):
        docs, recorded = _read_corpus(corpus, cache)
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
            "corpus": recorded,
            "files": index_files(tmp, cache),
        }
        write_json(tmp / "index.json", manifest)
    cache.save()  # keyed by (device, inode): still true after the directory is renamed into place
    console.print(f"[green]built[/] {final} ({len(docs):,} documents)")
    return final


def load_engine(world_dir: str | Path, backend: str | None = None, **options) -> SearchEngine:
    """Open the world's index. `options` override the backend's config (e.g. fuzzy=False)."""
    world_dir, backend = Path(world_dir), backend or DEFAULT_BACKEND
    cls = engine_class(backend)
    corpus, directory = world_dir / "corpus.jsonl", index_dir(world_dir, backend)
    if not corpus.is_file():
        raise FileNotFoundError(f"{corpus} not found; is {world_dir} a world directory?")
    problem = _problem(directory, corpus)
    if problem is not None:
        error, reason = problem
        if error is IndexMissingError:
            raise IndexMissingError(
                f"{world_dir} has no {backend} index ({reason}); run: {_build_command(world_dir, backend)}"
            )
        if error is StaleIndexError:
            raise StaleIndexError(
                f"the {backend} index of {world_dir} is stale: {reason}; run: {_build_command(world_dir, backend)}"
            )
        raise DamagedIndexError(
            f"the {backend} index of {world_dir} is damaged: {reason}; "
            f"run: {_build_command(world_dir, backend, overwrite=True)}"
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
