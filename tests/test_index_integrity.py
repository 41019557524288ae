"""Index integrity: every index file is checked at load, a damaged or partial index is named and rebuilt, and
two builds of the same corpus give the same bytes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.index.bm25s_engine import ARRAYS, FUZZY_ARRAYS
from searchgym.index.build import (
    INDEX_FORMAT,
    DamagedIndexError,
    IndexMissingError,
    StaleIndexError,
    build_index,
    load_engine,
)
from searchgym.io import write_jsonl
from searchgym.types import Document

BACKENDS = ["bm25s", "tantivy"]
DOCS = [
    Document(
        f"d{i}", f"https://w/{i}", f"Title {i} {w}", f"{w} is a word. Document {i} mentions {w} twice: {w}."
    )
    for i, w in enumerate(["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel"])
]
QUERIES = ["alpha", "charlie word", "hotel document", "foxtrt"]


def _world(tmp_path, name="world"):
    world = tmp_path / name
    write_jsonl(world / "corpus.jsonl", (d.to_dict() for d in DOCS))
    return world


def _results(engine):
    return [[(h.doc_id, h.text, round(h.score, 4)) for h in engine.search(q, 3)] for q in QUERIES]


def _listed(path):
    return sorted(json.loads((path / "index.json").read_text())["files"])


def _kinds(path):
    """Listed files as glob patterns: a tantivy segment file by its extension."""
    return [f"tantivy/*{Path(n).suffix}" if len(Path(n).stem) == 32 else n for n in _listed(path)]


def _replace(path, data: bytes):
    """Damage by renaming another file over `path`: writing the file in place would change pages an engine loaded
    earlier in this process still maps (texts.bin), and touching them then is a SIGBUS, not a test failure."""
    tmp = path.with_name(path.name + ".damaged")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _flip(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    _replace(path, bytes(data))


def _truncate(path):
    _replace(path, path.read_bytes()[:-1])


DAMAGE = {"flip": _flip, "truncate": _truncate, "delete": os.remove}


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_index_file_is_listed(tmp_path, backend):
    path = build_index(_world(tmp_path), backend, progress=False)
    on_disk = sorted(
        p.relative_to(path).as_posix()
        for p in path.rglob("*")
        if p.is_file() and p.name != "index.json" and p.suffix != ".lock"
    )
    assert _listed(path) == on_disk
    required = {
        "config.json",
        "fields.bin",
        "fields.npy",
        "url_hashes.npy",
        "url_order.npy",
        "texts.bin",
        "offsets.npy",
    }
    if backend == "bm25s":
        required |= {f"{n}.npy" for n in ARRAYS + FUZZY_ARRAYS} | {
            "vocab.bin",
            "vocab.npy",
            "vocab_hashes.npy",
            "vocab_order.npy",
            "surface.bin",
            "surface.npy",
        }
    assert required <= set(on_disk)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_file_is_named_and_rebuilt(tmp_path, backend, damage):
    world = _world(tmp_path)
    path = build_index(world, backend, progress=False)
    want = _results(load_engine(world, backend))
    for kind in _kinds(path):
        target = next(path.glob(kind))  # tantivy renames its segment files on every build
        if target.stat().st_size == 0 and damage != "delete":
            continue
        DAMAGE[damage](target)
        with pytest.raises(DamagedIndexError) as err:
            load_engine(world, backend)
        message = str(err.value)
        assert str(target) in message, message
        assert f"run: searchgym index build {world} --backend {backend} --overwrite" in message
        # without --overwrite, a damaged or partial index is rebuilt, never accepted
        build_index(world, backend, progress=False)
        assert _results(load_engine(world, backend)) == want, kind


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe not json", b"{}", b'{"format": %d, "files": [1], "corpus": {}}' % INDEX_FORMAT],
)
def test_damaged_index_json_is_named(tmp_path, backend, content):
    world = _world(tmp_path)
    path = build_index(world, backend, progress=False)
    (path / "index.json").write_bytes(content)
    with pytest.raises(DamagedIndexError, match=f"{path / 'index.json'} is not a valid index manifest"):
        load_engine(world, backend)
    build_index(world, backend, progress=False)
    assert load_engine(world, backend).search("alpha", 1)[0].doc_id == "d0"


def test_manifest_cannot_point_outside_the_index(tmp_path):
    world = _world(tmp_path)
    path = build_index(world, "bm25s", progress=False)
    manifest = json.loads((path / "index.json").read_text())
    manifest["files"]["../../corpus.jsonl"] = manifest["corpus"]
    (path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(DamagedIndexError, match="bad file record '../../corpus.jsonl'"):
        load_engine(world, "bm25s")


@pytest.mark.parametrize("backend", BACKENDS)
def test_deleted_index_json_is_missing_and_rebuilt(tmp_path, backend):
    world = _world(tmp_path)
    path = build_index(world, backend, progress=False)
    os.remove(path / "index.json")
    with pytest.raises(IndexMissingError, match=f"index.json is missing.*run: searchgym index build {world}"):
        load_engine(world, backend)
    build_index(world, backend, progress=False)
    assert load_engine(world, backend).search("golf", 1)[0].doc_id == "d6"


def test_same_size_corpus_edit_is_stale(tmp_path):
    """The staleness check hashes the corpus: an edit that keeps the size (and even the mtime) is caught."""
    world = _world(tmp_path)
    build_index(world, "bm25s", progress=False)
    corpus = world / "corpus.jsonl"
    st = corpus.stat()
    corpus.write_bytes(corpus.read_bytes().replace(b"alpha", b"omega"))
    os.utime(corpus, ns=(st.st_atime_ns, st.st_mtime_ns))
    with pytest.raises(StaleIndexError, match="corpus.jsonl changed"):
        load_engine(world, "bm25s")


def test_cli_build_rebuilds_a_partial_index(tmp_path):
    world = _world(tmp_path)
    runner = CliRunner()
    assert runner.invoke(app, ["index", "build", str(world)]).exit_code == 0
    path = world / "index" / "bm25s"
    for name in ("config.json", "docs.npy", "texts.bin"):
        os.remove(path / name)
    with pytest.raises(DamagedIndexError, match="config.json is missing"):
        load_engine(world)
    result = runner.invoke(app, ["index", "build", str(world)])
    assert result.exit_code == 0, result.output
    assert "config.json is missing" in result.output.replace("\n", "")  # says why (the CLI wraps lines)
    assert load_engine(world).search("delta", 1)[0].doc_id == "d3"


@pytest.mark.parametrize("backend", BACKENDS)
def test_index_is_byte_identical_across_builds(tmp_path, backend):
    """Two builds of the same world, in two directories, give the same bytes in every file (index.json too;
    tantivy's segments are renumbered from its random UUIDs)."""
    worlds = [_world(tmp_path, f"w{run}") for run in range(2)]
    os.utime(worlds[1] / "corpus.jsonl", ns=(0, 0))  # the corpus mtime is not part of the index
    dirs = [build_index(w, backend, progress=False) for w in worlds]
    files = [
        {p.relative_to(d).as_posix(): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}
        for d in dirs
    ]
    assert files[0] == files[1]
    names = {"bm25s": {"docs.npy", "impact_docs.npy", "fuzzy_keys.npy"}, "tantivy": {"tantivy/meta.json"}}
    assert {"index.json", "texts.bin"} | names[backend] <= set(files[0])
    assert _results(load_engine(worlds[0], backend)) == _results(load_engine(worlds[1], backend))


def test_older_index_format_is_refused_and_rebuilt(tmp_path):
    """Format 6 memory-maps fields and vocabulary: a format-5 index (docs.json, vocab.json) is refused in one line."""
    world = _world(tmp_path)
    path = build_index(world, "bm25s", progress=False)
    manifest = json.loads((path / "index.json").read_text())
    manifest["format"] = INDEX_FORMAT - 1
    (path / "index.json").write_text(json.dumps(manifest))
    with pytest.raises(StaleIndexError) as err:
        load_engine(world, "bm25s")
    message = str(err.value)
    assert "\n" not in message
    assert f"it has index format {INDEX_FORMAT - 1}, this SearchGym reads {INDEX_FORMAT}" in message
    assert f"run: searchgym index build {world} --backend bm25s" in message
    build_index(world, "bm25s", progress=False)
    assert load_engine(world, "bm25s").search("alpha", 1)[0].doc_id == "d0"
