"""The world directory on disk and `World`, its in-memory view.

`World.load(path)` checks every file listed in manifest.json against its sha256 first, so a truncated or tampered
world fails with a `WorldError` naming the file, never deep inside a parser. A file whose stat key is unchanged
since it was hashed (by the build, or an earlier check) is not hashed again (`searchgym.hashcache`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any

from searchgym.errors import SearchGymError
from searchgym.hashcache import HashCache
from searchgym.io import atomic_open, read_json, read_jsonl, write_json
from searchgym.types import Document
from searchgym.world.claims import Claim, distractor_entities, noise_claims
from searchgym.world.corpus import url_for
from searchgym.world.names import name_key
from searchgym.world.schema import Schema, SchemaError, parse_schema
from searchgym.world.types import Edge, Entity, Fact

FORMAT_VERSION = 1
_ID = re.compile(r'"id": "([^"]+)"')
WORLD_FILES = ("schema.yaml", "entities.jsonl", "edges.jsonl", "facts.jsonl", "corpus.jsonl", "noise.jsonl")


class WorldError(SearchGymError, RuntimeError):
    """A world directory that cannot be used; the message names the file and what to do."""


class HashedFile:
    """Writes a world file atomically and hashes the bytes on their way out: one pass, no re-read."""

    def __init__(self, path: Path):
        self.path, self.sha, self.bytes, self.rows = Path(path), hashlib.sha256(), 0, 0
        self._ctx = atomic_open(self.path, "wb")
        self._f = self._ctx.__enter__()
        self._buf: list[bytes] = []
        self._pending = 0

    def write(self, data: bytes) -> None:
        self.sha.update(data)
        self.bytes += len(data)
        self._buf.append(data)
        self._pending += len(data)
        if self._pending >= 1 << 20:
            self._flush()

    def _flush(self) -> None:
        self._f.write(b"".join(self._buf))
        self._buf, self._pending = [], 0

    def close(self) -> dict[str, Any]:
        """Finish the file (fsync + rename) and return its manifest entry."""
        self._flush()
        self._ctx.__exit__(None, None, None)
        return {"sha256": self.sha.hexdigest(), "bytes": self.bytes}

    def abort(self) -> None:
        self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)


def write_rows(path: Path, rows: Iterable[dict[str, Any]]) -> tuple[int, dict[str, Any]]:
    """`searchgym.io.write_jsonl`'s bytes (sorted keys, UTF-8, one row a line), hashed while written:
    (rows, manifest entry)."""
    out = HashedFile(path)
    try:
        for row in rows:
            out.write(json.dumps(row, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n")
            out.rows += 1
    except BaseException:
        out.abort()
        raise
    return out.rows, out.close()


def write_chunks(path: Path, chunks: Iterable[bytes]) -> tuple[int, dict[str, Any]]:
    """Write chunks of complete JSON lines (`searchgym.world.rows`), hashed while written: (rows, entry)."""
    out = HashedFile(path)
    try:
        for chunk in chunks:
            out.write(chunk)
            out.rows += chunk.count(b"\n")
    except BaseException:
        out.abort()
        raise
    return out.rows, out.close()


def write_text(path: Path, text: str) -> dict[str, Any]:
    out = HashedFile(path)
    out.write(text.encode("utf-8"))
    return out.close()


def content_hash(files: dict[str, dict[str, Any]]) -> str:
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}:{files[name]['sha256']}\n".encode())
    return h.hexdigest()


def write_manifest(directory: Path, info: dict[str, Any], files: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Write manifest.json from the files' hashes (no timestamps: same inputs, same bytes)."""
    from searchgym import __version__

    missing = sorted(set(WORLD_FILES) - set(files))
    if missing:
        raise ValueError(f"manifest of {directory}: no hash for {missing}")
    manifest = {
        "format_version": FORMAT_VERSION,
        "searchgym_version": __version__,
        **info,
        "files": {name: files[name] for name in WORLD_FILES},
        "content_hash": content_hash(files),
    }
    write_json(directory / "manifest.json", manifest)
    return manifest


def check_files(path: Path, manifest: dict[str, Any]) -> None:
    """Every listed file against its size and sha256 (remembered by stat key: `searchgym.hashcache`)."""
    cache = HashCache()
    try:
        _check_files(path, manifest, cache)
    finally:
        cache.save()


def _check_files(path: Path, manifest: dict[str, Any], cache: HashCache) -> None:
    rebuild = f"rebuild it with `searchgym world build {path} --overwrite`"
    for name, meta in sorted(manifest.get("files", {}).items()):
        f = path / name
        if not f.exists():
            raise WorldError(f"{f} is missing; the world is incomplete ({rebuild})")
        if f.stat().st_size != meta["bytes"]:
            raise WorldError(
                f"{f} has {f.stat().st_size} bytes but the manifest records {meta['bytes']}: the file is "
                f"truncated or was modified ({rebuild})"
            )
        if cache.sha256(f) != meta["sha256"]:
            raise WorldError(
                f"{f} does not match its sha256 in manifest.json: the file was modified ({rebuild})"
            )


def read_manifest(path: Path) -> dict[str, Any]:
    mf = Path(path) / "manifest.json"
    if not Path(path).is_dir():
        raise WorldError(f"{path} is not a world directory; build one with `searchgym world build {path}`")
    if not mf.exists():
        raise WorldError(f"{mf} is missing: not a world directory, or its build did not finish")
    manifest = read_json(
        mf, f"the world is damaged; rebuild it with `searchgym world build {path} --overwrite`"
    )
    if manifest.get("format_version") != FORMAT_VERSION:
        raise WorldError(
            f"{mf}: format_version {manifest.get('format_version')!r} is not {FORMAT_VERSION}; rebuild the world"
        )
    return manifest


class World:
    """A loaded world. Files are hash-checked on load; records are parsed on first use (so `info`-style
    tools and huge worlds stay cheap). Attributes: path, manifest, schema, entities, edges, facts, documents, noise."""

    def __init__(self, path: Path, manifest: dict[str, Any], schema: Schema):
        self.path, self.manifest, self.schema = Path(path), manifest, schema

    @classmethod
    def load(cls, path: str | Path, check: bool = True) -> World:
        path = Path(path)
        manifest = read_manifest(path)
        if check:
            check_files(path, manifest)
        try:
            schema = parse_schema(
                (path / "schema.yaml").read_text(encoding="utf-8"), where=str(path / "schema.yaml")
            )
        except SchemaError as e:
            raise WorldError(f"{path}/schema.yaml is not a valid schema ({e}); rebuild the world") from e
        return cls(path, manifest, schema)

    def _rows(self, name: str) -> Iterator[dict[str, Any]]:
        try:
            yield from read_jsonl(self.path / name)
        except (OSError, ValueError) as e:
            raise WorldError(f"{self.path / name}: cannot be read ({e}); rebuild the world") from e

    def _parse(self, name: str, make: Callable[[dict[str, Any]], Any]) -> list[Any]:
        try:
            return [make(d) for d in self._rows(name)]
        except (KeyError, TypeError) as e:
            raise WorldError(f"{self.path / name}: malformed record ({e!r}); rebuild the world") from e

    @cached_property
    def entities(self) -> dict[str, Entity]:
        rows = self._parse("entities.jsonl", lambda d: Entity(d["id"], d["type"], d["name"], d["attrs"]))
        return {e.id: e for e in rows}

    @cached_property
    def edges(self) -> list[Edge]:
        return self._parse(
            "edges.jsonl",
            lambda d: Edge(
                d["id"], d["relation"], d["source"], d["target"], d["verified"], tuple(d["failures"])
            ),
        )

    @cached_property
    def facts(self) -> dict[int, Fact]:
        rows = self._parse("facts.jsonl", lambda d: Fact(d["edge"], d["doc"], d["sentence"]))
        return {f.edge: f for f in rows}

    @cached_property
    def documents(self) -> list[Document]:
        return self._parse(
            "corpus.jsonl", lambda d: Document(d["id"], d["url"], d["title"], d["text"], d["entity"])
        )

    @cached_property
    def noise(self) -> list[dict[str, Any]]:
        return list(self._rows("noise.jsonl"))

    @cached_property
    def claims(self) -> list[Claim]:
        """(relation, holder, other end) the corpus states beyond the edges (see `searchgym.world.claims`)."""
        by_id = {e.id: e for e in self.edges}
        return noise_claims(self.schema, self.noise, lambda e: (by_id[e].relation, *self.orient(by_id[e])))

    @cached_property
    def distractors(self) -> dict[str, Entity]:
        """The near-namesakes described by distractor articles, keyed by document id."""
        return distractor_entities(self.noise)

    @cached_property
    def _by_url(self) -> dict[str, Document]:
        return {d.url: d for d in self.documents}

    @cached_property
    def _by_doc_id(self) -> dict[str, Document]:
        return {d.id: d for d in self.documents}

    @cached_property
    def _adjacency(self) -> tuple[dict[str, list[Edge]], dict[str, list[Edge]]]:
        out: dict[str, list[Edge]] = {}
        inc: dict[str, list[Edge]] = {}
        for e in self.edges:
            out.setdefault(e.source, []).append(e)
            inc.setdefault(e.target, []).append(e)
        return out, inc

    @cached_property
    def _by_name(self) -> dict[str, Entity]:
        return {name_key(x.name): x for x in self.entities.values()}

    def doc_by_url(self, url: str) -> Document | None:
        return self._by_url.get(url)

    def doc_of(self, entity_id: str) -> Document:
        doc = self._by_doc_id.get(entity_id)
        if doc is None:
            raise KeyError(f"no article for entity {entity_id!r}")
        return doc

    def url_of(self, entity_id: str) -> str:
        """The URL of an entity's article (from its name, without reading the corpus)."""
        return url_for(self.entities[entity_id].name)

    def out_edges(self, eid: str) -> list[Edge]:
        return self._adjacency[0].get(eid, [])

    def in_edges(self, eid: str) -> list[Edge]:
        return self._adjacency[1].get(eid, [])

    def orient(self, edge: Edge) -> tuple[str, str]:
        """(holder, other end) entity ids of `edge` (see RelationSpec.holder)."""
        return self.schema.relation(edge.relation).orient(edge.source, edge.target)

    def holder(self, edge: Edge) -> str:
        return self.orient(edge)[0]

    def other_end(self, edge: Edge) -> str:
        return self.orient(edge)[1]

    def verified_edges(self) -> list[Edge]:
        return [e for e in self.edges if e.verified]

    def entity_by_name(self, name: str) -> Entity | None:
        return self._by_name.get(name_key(name))


def _grep(path: Path, needle: str, lower: bool = False) -> Iterator[dict[str, Any]]:
    """JSON rows of a JSON Lines file whose raw line contains `needle` (cheap pre-filter before parsing)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if needle in (line.lower() if lower else line):
                yield json.loads(line)


def find_entity(
    path: str | Path, key: str
) -> tuple[Entity | None, Document | None, list[Edge], dict[str, str]]:
    """Look up one entity by id, name or article URL by scanning the files (fast on million-entity worlds).

    Returns (entity, its document, its edges, names of the entities those edges touch)."""
    path = Path(path)
    ent_row, doc_row = None, None
    if "://" in key:
        doc_row = next((d for d in _grep(path / "corpus.jsonl", json.dumps(key)) if d["url"] == key), None)
        key = (doc_row or {}).get("entity") or ""
    if key:
        folded = name_key(key)
        needle, lower = (json.dumps(key), False) if "/" in key else ((folded.split() or [""])[0], True)
        rows = _grep(path / "entities.jsonl", needle, lower)
        ent_row = next((d for d in rows if d["id"] == key or name_key(d["name"]) == folded), None)
    if ent_row is None:
        doc = Document(**doc_row) if doc_row else None
        return None, doc, [], {}
    eid = ent_row["id"]
    if doc_row is None:
        doc_row = next((d for d in _grep(path / "corpus.jsonl", json.dumps(eid)) if d["id"] == eid), None)
    edges = [
        Edge(d["id"], d["relation"], d["source"], d["target"], d["verified"], tuple(d["failures"]))
        for d in _grep(path / "edges.jsonl", json.dumps(eid))
        if eid in (d["source"], d["target"])
    ]
    wanted = {x for e in edges for x in (e.source, e.target)} | {eid}
    names = {}
    with open(path / "entities.jsonl", encoding="utf-8") as f:
        for line in f:
            m = _ID.search(line)
            if m and m.group(1) in wanted:
                names[m.group(1)] = json.loads(line)["name"]
    entity = Entity(ent_row["id"], ent_row["type"], ent_row["name"], ent_row["attrs"])
    return entity, Document(**doc_row) if doc_row else None, edges, names
