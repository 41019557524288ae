"""The same seed gives the same bytes: world, both indexes and a task set built twice through the CLI, in two
directories, are compared file by file; a corpus edited afterwards still makes both indexes stale."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.index.build import StaleIndexError, load_engine

BACKENDS = ("bm25s", "tantivy")
SMALL_TASKS = ("chain_per_hops=5", "obfuscated=4", "intersection=3", "comparison=3")
TASKS = [arg for setting in SMALL_TASKS for arg in ("--set", setting)]


def _run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"searchgym {' '.join(args)}:\n{result.output}"


def _pipeline(world: Path, seed: int) -> Path:
    _run("world", "build", str(world), "--entities", "200", "--seed", str(seed))
    for backend in BACKENDS:
        _run("index", "build", str(world), "--backend", backend)
    _run("tasks", "build", str(world), *TASKS)
    return world


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("determinism")
    return [_pipeline(root / f"run{n}", seed=7) for n in range(2)]


def test_same_seed_gives_byte_identical_files(built):
    a, b = (_files(w) for w in built)
    differing = sorted(name for name in a.keys() | b.keys() if a.get(name) != b.get(name))
    assert not differing, f"files that differ between two builds of seed 7: {differing}"
    expected = {"corpus.jsonl", "manifest.json", "tasks/default/tasks.jsonl", "tasks/default/manifest.json"}
    expected |= {f"index/{b}/index.json" for b in BACKENDS} | {"index/tantivy/tantivy/meta.json"}
    assert expected <= set(a), sorted(set(a))
    assert any(n.startswith("index/tantivy/tantivy/") and n.endswith(".store") for n in a)


def test_another_seed_gives_other_bytes(built, tmp_path):
    other = _files(_pipeline(tmp_path / "seed8", seed=8))
    same = _files(built[0])
    for name in (
        "corpus.jsonl",
        "index/bm25s/index.json",
        "index/tantivy/index.json",
        "tasks/default/tasks.jsonl",
    ):
        assert other[name] != same[name], name


@pytest.mark.parametrize("backend", BACKENDS)
def test_edited_corpus_is_stale_and_rebuilt(built, tmp_path, backend):
    world = Path(shutil.copytree(built[0], tmp_path / "world"))
    load_engine(world, backend)  # a copied world (new mtimes) is not stale: the check is by content
    corpus = world / "corpus.jsonl"
    corpus.write_bytes(corpus.read_bytes().replace(b"University", b"Universitx", 1))
    with pytest.raises(StaleIndexError, match="corpus.jsonl changed since it was built"):
        load_engine(world, backend)
    _run("index", "build", str(world), "--backend", backend)
    assert any("Universitx" in h.text for h in load_engine(world, backend).search("Universitx", 3))
