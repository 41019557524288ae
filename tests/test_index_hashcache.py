"""The hash cache: an index file verified once is not hashed again while its stat key is unchanged, and any
rewrite (in place with the mtime put back, replaced, truncated) misses the cache and is caught."""

from __future__ import annotations

import json
import os
import time

import pytest

from searchgym.hashcache import RACY_NS, HashCache, cache_path
from searchgym.index.build import DamagedIndexError, StaleIndexError, build_index, load_engine
from searchgym.io import sha256_file, write_jsonl
from searchgym.types import Document

DOCS = [
    Document(f"d{i}", f"https://w/{i}", f"Title {w}", f"{w} is word {i}.") for i, w in enumerate("abcdef")
]


@pytest.fixture
def world(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    world = tmp_path / "world"
    write_jsonl(world / "corpus.jsonl", (d.to_dict() for d in DOCS))
    return world


def _settle():
    time.sleep(RACY_NS / 1e9 + 0.05)  # files younger than RACY_NS are never remembered


def _cached() -> dict:
    return json.loads(cache_path().read_text())


def _key(path) -> str:
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}"


def test_a_fresh_file_is_not_remembered_an_old_one_is(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"x" * 100)
    cache = HashCache()
    assert cache.sha256(f) == sha256_file(f) and cache.added == {}
    _settle()
    assert cache.sha256(f) == sha256_file(f)
    assert cache.added[_key(f)][3] == sha256_file(f)


@pytest.mark.parametrize("backend", ["bm25s", "tantivy"])
def test_verified_files_are_remembered_and_the_cache_is_used(world, backend):
    path = build_index(world, backend, progress=False)
    _settle()
    load_engine(world, backend)  # hashes what the build could not remember yet
    cached = _cached()
    files = json.loads((path / "index.json").read_text())["files"]
    for name, rec in files.items():
        assert cached[_key(path / name)][3] == rec["sha256"], name
    assert cached[_key(world / "corpus.jsonl")][3] == sha256_file(world / "corpus.jsonl")
    # the cache is what load_engine trusts: a wrong remembered hash is reported, so no file was re-read
    target = path / "config.json"
    cached[_key(target)][3] = "0" * 64
    cache_path().write_text(json.dumps(cached))
    with pytest.raises(DamagedIndexError, match="config.json does not match its sha256"):
        load_engine(world, backend)


def test_build_remembers_the_corpus_hash_it_read(world):
    _settle()
    path = build_index(world, "bm25s", progress=False)
    corpus = world / "corpus.jsonl"
    assert json.loads((path / "index.json").read_text())["corpus"]["sha256"] == sha256_file(corpus)
    assert _cached()[_key(corpus)][3] == sha256_file(corpus)


def test_in_place_rewrite_with_the_mtime_put_back_is_caught(world):
    path = build_index(world, "bm25s", progress=False)
    _settle()
    load_engine(world, "bm25s")
    target = path / "config.json"  # read at load, not memory-mapped: safe to rewrite in place
    assert _key(target) in _cached()
    st = target.stat()
    data = target.read_bytes()
    target.write_bytes(data.replace(b"1.5", b"2.5"))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    with pytest.raises(DamagedIndexError, match="config.json does not match its sha256"):
        load_engine(world, "bm25s")


def test_cached_corpus_edit_is_still_stale(world):
    build_index(world, "bm25s", progress=False)
    _settle()
    load_engine(world, "bm25s")
    corpus = world / "corpus.jsonl"
    st = corpus.stat()
    corpus.write_bytes(corpus.read_bytes().replace(b"word 1", b"word 7"))
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(StaleIndexError, match="corpus.jsonl changed"):
        load_engine(world, "bm25s")


def test_disabled_cache_writes_nothing(world, monkeypatch):
    monkeypatch.setenv("SEARCHGYM_HASH_CACHE", "0")
    build_index(world, "bm25s", progress=False)
    _settle()
    load_engine(world, "bm25s")
    assert not cache_path().exists()


def test_world_build_hashes_the_corpus_once(world, tmp_path, monkeypatch):
    """The verified world build hashes corpus.jsonl while writing it; the index build reuses that hash."""
    monkeypatch.setattr(
        "searchgym.hashcache.RACY_NS", 0
    )  # a 60-entity corpus is milliseconds old when indexed
    from searchgym.pipeline import build_world
    from searchgym.world.build import WorldConfig

    out = tmp_path / "built"
    built = build_world(WorldConfig(seed=0, num_entities=60), out, progress=False)
    corpus = out / "corpus.jsonl"
    sha = built.manifest["files"]["corpus.jsonl"]["sha256"]
    assert sha == sha256_file(corpus) and _cached()[_key(corpus)][3] == sha
    assert json.loads((out / "index" / "bm25s" / "index.json").read_text())["corpus"]["sha256"] == sha


def test_index_build_reuses_a_remembered_corpus_hash(world):
    """Proof of reuse, not re-hashing: a hash remembered for the corpus's stat key is what index.json records."""
    from searchgym.hashcache import remember_written

    corpus = world / "corpus.jsonl"
    _settle()
    remember_written(corpus, {"sha256": "f" * 64, "bytes": corpus.stat().st_size})
    path = build_index(world, "bm25s", progress=False)
    assert json.loads((path / "index.json").read_text())["corpus"]["sha256"] == "f" * 64
    os.utime(corpus)  # a touched corpus misses the cache and is hashed: the index is then stale
    with pytest.raises(StaleIndexError, match="corpus.jsonl changed"):
        load_engine(world, "bm25s")


def test_world_files_are_remembered_and_an_in_place_edit_is_caught(world, tmp_path, monkeypatch):
    """World.load(check=True) reads the hashes the build computed while writing; an edit with the mtime put
    back still fails the check."""
    from searchgym.pipeline import build_world
    from searchgym.world.build import WorldConfig
    from searchgym.world.store import World, WorldError

    monkeypatch.setattr("searchgym.hashcache.RACY_NS", 0)
    out = tmp_path / "built"
    built = build_world(WorldConfig(seed=0, num_entities=60), out, progress=False)
    cached = _cached()
    for name, rec in built.manifest["files"].items():
        assert cached[_key(out / name)][3] == rec["sha256"], name
    World.load(out)
    monkeypatch.setattr("searchgym.hashcache.RACY_NS", RACY_NS)
    _settle()
    target = out / "entities.jsonl"
    st = target.stat()
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(WorldError, match="entities.jsonl does not match its sha256"):
        World.load(out)
