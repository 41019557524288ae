"""Fault injection: kill -9 at seeded points of every build, a corrupted byte in every world / index / task-set file,
a full disk (a write hook raising ENOSPC, and a real tiny tmpfs where the platform allows mounting one).

What must hold: no half-written output (a build's result is complete or absent), a rerun succeeds and removes the
temporaries of the killed build, and every error is one line `error: …` naming the file and what to run."""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchgym import io
from searchgym.cli import app
from searchgym.index.build import SearchIndexError, load_engine
from searchgym.tasks.store import load_tasks
from searchgym.world.store import World

runner = CliRunner()
TASKS = [
    "--set",
    "chain_per_hops=5",
    "--set",
    "obfuscated=5",
    "--set",
    "intersection=5",
    "--set",
    "comparison=5",
]
BACKENDS = ("bm25s", "tantivy")


def cli(*args: str):
    res = runner.invoke(app, [str(a) for a in args])
    return res


def ok(*args: str) -> None:
    res = cli(*args)
    assert res.exit_code == 0, res.output


def one_error_line(res, *needles: str) -> str:
    """The command failed with exit 2 and exactly one stderr line that names every needle; no traceback."""
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def temporaries(directory: Path) -> list[Path]:
    """SearchGym temporaries (and `.old` copies) anywhere under `directory`."""
    return sorted(p for p in directory.rglob(".*") if io._TEMP.fullmatch(p.name))


def digest(directory: Path) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A verified 300-entity world with both indexes and two task sets, `a` and `b`."""
    root = tmp_path_factory.mktemp("faults")
    w = root / "w"
    ok("world", "build", w, "--entities", "300", "--seed", "3")
    ok("index", "build", w, "--backend", "tantivy")
    ok("tasks", "build", w, "--name", "a", *TASKS)
    ok("tasks", "build", w, "--name", "b", *TASKS, "--set", "seed=1")
    return w


@pytest.fixture
def world(base: Path, tmp_path: Path) -> Path:
    w = tmp_path / "w"
    shutil.copytree(base, w)
    return w


# --- kill -9 -------------------------------------------------------------------------------------------------


def run_and_kill(args: list[str], watch: Path, delay: float) -> int:
    """Start `searchgym ARGS`, wait until its temporary shows up in `watch`, sleep `delay`, SIGKILL it."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchgym.cli", *map(str, args)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    deadline = time.monotonic() + 120
    while proc.poll() is None and not temporaries(watch) and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    proc.kill()
    return proc.wait()


def complete_or_restorable(final: Path, load) -> None:
    """After a kill: `final` is complete (it loads), or it is gone with its previous version kept aside as `.old`
    (killed between the two renames of an overwrite) for the next run to put back."""
    if final.exists():
        load(final)
    else:
        assert any(
            p.name.startswith(f".{final.name}.") and p.name.endswith(".old") for p in final.parent.iterdir()
        )


@pytest.mark.parametrize("point", range(3))
def test_kill_9_during_world_build(tmp_path: Path, point: int):
    out = tmp_path / "w"
    ok("world", "build", out, "--entities", "300", "--seed", "1", "--no-verify")
    before = digest(out)
    delay = random.Random(f"world:{point}").uniform(0.0, 1.0)
    run_and_kill(["world", "build", out, "--entities", "300", "--seed", "2", "--overwrite"], tmp_path, delay)
    complete_or_restorable(out, World.load)
    if out.exists() and digest(out) != before:
        assert World.load(out).manifest["seed"] == 2  # the new world, whole
    ok("world", "build", out, "--entities", "300", "--seed", "2", "--overwrite")
    assert World.load(out).manifest["seed"] == 2
    assert temporaries(tmp_path) == []


@pytest.mark.parametrize("point", range(3))
def test_kill_9_during_tasks_build(world: Path, point: int):
    other = digest(world / "tasks" / "b")
    delay = random.Random(f"tasks:{point}").uniform(0.0, 1.0)
    args = ["tasks", "build", world, "--name", "a", "--overwrite", *TASKS, "--set", "chain_per_hops=40"]
    run_and_kill(args, world / "tasks", delay)
    complete_or_restorable(world / "tasks" / "a", load_tasks)
    assert digest(world / "tasks" / "b") == other
    ok(*args)
    assert len(load_tasks(world / "tasks" / "a")) > 0 and digest(world / "tasks" / "b") == other
    assert temporaries(world) == []


@pytest.mark.parametrize("point", range(3))
def test_kill_9_during_index_build(world: Path, point: int):
    delay = random.Random(f"index:{point}").uniform(0.0, 0.5)
    args = ["index", "build", world, "--overwrite"]
    run_and_kill(args, world / "index", delay)
    try:
        load_engine(world)
    except SearchIndexError as e:  # gone with `.old` aside: the next build puts it back or rebuilds it
        assert "index build" in str(e)
    ok(*args)
    assert load_engine(world).search("a", 1) is not None
    assert temporaries(world) == []


# --- corrupted bytes -----------------------------------------------------------------------------------------


def corrupt(path: Path, seed: str) -> None:
    """Write 0xff (never valid UTF-8) at a seeded offset; an empty file gets one 0xff byte."""
    data = bytearray(path.read_bytes())
    if not data:
        path.write_bytes(b"\xff")
        return
    data[random.Random(seed).randrange(len(data))] = 0xFF
    path.write_bytes(bytes(data))


def files_of(directory: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    return [p for p in sorted(directory.iterdir()) if p.is_file() and p.name not in skip]


def test_a_corrupted_byte_in_any_world_file_is_named(base: Path, tmp_path: Path):
    for f in files_of(base, skip=("manifest.json",)):
        w = tmp_path / f.name
        shutil.copytree(base, w, ignore=shutil.ignore_patterns("index", "tasks"))
        corrupt(w / f.name, f.name)
        one_error_line(cli("world", "info", w), str(w / f.name), f"searchgym world build {w} --overwrite")


def test_a_corrupted_world_manifest_is_named(base: Path, tmp_path: Path):
    w = tmp_path / "w"
    shutil.copytree(base, w, ignore=shutil.ignore_patterns("index", "tasks"))
    corrupt(w / "manifest.json", "manifest.json")
    one_error_line(cli("world", "info", w), str(w / "manifest.json"), "searchgym world build")


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_corrupted_byte_in_any_index_file_is_named(base: Path, tmp_path: Path, backend: str):
    for f in sorted(p for p in (base / "index" / backend).rglob("*") if p.is_file() and p.suffix != ".lock"):
        rel = f.relative_to(base)
        w = tmp_path / f.name
        shutil.copytree(base, w)
        corrupt(w / rel, str(rel))
        res = cli("tasks", "oracle", w / "tasks" / "a", "--backend", backend, "--limit", "1")
        one_error_line(res, str(w / rel), f"searchgym index build {w} --backend {backend} --overwrite")
        shutil.rmtree(w)


def test_a_corrupted_byte_in_any_task_set_file_is_named(base: Path, tmp_path: Path):
    for f in files_of(base / "tasks" / "a"):
        w = tmp_path / f.name
        shutil.copytree(base, w, ignore=shutil.ignore_patterns("index"))
        corrupt(w / "tasks" / "a" / f.name, f.name)
        res = cli("tasks", "show", w / "tasks" / "a", "chain-0000")
        one_error_line(
            res, str(w / "tasks" / "a" / f.name), f"searchgym tasks build {w} --name a --overwrite"
        )


# --- disk full -------------------------------------------------------------------------------------------------


def full_after(limit: int):
    """A write hook: the disk is full once `limit` bytes went out through searchgym.io."""
    written = [0]

    def hook(path: Path, n: int) -> None:
        written[0] += n
        if written[0] > limit:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))

    return hook


@pytest.mark.parametrize("limit", [0, 50_000, 400_000])
def test_disk_full_during_world_build(tmp_path: Path, monkeypatch, limit: int):
    monkeypatch.setattr(io, "write_hook", full_after(limit))
    out = tmp_path / "w"
    res = cli("world", "build", out, "--entities", "300", "--no-verify")
    one_error_line(res, f"no space left on device while writing {out}", "df -h", "run the command again")
    assert list(tmp_path.iterdir()) == []


def test_disk_full_during_tasks_and_index_build(world: Path, monkeypatch):
    sets = digest(world / "tasks")
    monkeypatch.setattr(io, "write_hook", full_after(1_000))
    res = cli("tasks", "build", world, "--name", "c", *TASKS)
    one_error_line(res, f"no space left on device while writing {world / 'tasks' / 'c'}")
    assert digest(world / "tasks") == sets and temporaries(world) == []
    res = cli("index", "build", world, "--overwrite")
    one_error_line(res, f"no space left on device while writing {world / 'index' / 'bm25s'}")
    monkeypatch.setattr(io, "write_hook", None)
    load_engine(world)  # the previous index is untouched
    assert temporaries(world) == []


@pytest.fixture
def tiny_disk(tmp_path: Path):
    """Mount a small tmpfs (root only; skipped where mounting is not permitted) and unmount it afterwards."""

    def mount(size: str) -> Path:
        point = tmp_path / f"disk{size}"
        point.mkdir()
        r = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)], capture_output=True
        )
        if r.returncode != 0:
            pytest.skip(
                f"cannot mount a tmpfs here ({r.stderr.decode().strip() or r.returncode}); the write-hook "
                "tests cover ENOSPC"
            )
        mounted.append(point)
        return point

    mounted: list[Path] = []
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8); the write-hook tests cover ENOSPC")
    yield mount
    gc.collect()  # drop the failed builds' frames (and any file they still hold open) before unmounting
    for point in mounted:
        if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
            subprocess.run(
                ["umount", "-l", str(point)], check=False
            )  # still busy: detach it now, freed later


def test_a_real_full_disk(tiny_disk, base: Path):
    disk = tiny_disk("256k")
    out = disk / "w"
    res = cli("world", "build", out, "--entities", "300")
    one_error_line(res, f"no space left on device while writing {out}", f"df -h {disk}")
    assert list(disk.iterdir()) == []
    disk = tiny_disk("640k")  # room for the world without its index
    w = disk / "w"
    shutil.copytree(base, w, ignore=shutil.ignore_patterns("index", "tasks"))
    res = cli("index", "build", w)
    one_error_line(res, f"no space left on device while writing {w / 'index' / 'bm25s'}")
    World.load(w)
    assert temporaries(disk) == [] and not (w / "index" / "bm25s").exists()
