"""`searchgym world ...` commands through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchgym.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "w"
    res = runner.invoke(app, ["world", "build", str(out), "--entities", "400", "--seed", "9", "--no-verify"])
    assert res.exit_code == 0, res.output
    assert "400 entities" in res.output
    return out


def test_build_refuses_existing_dir(built: Path):
    res = runner.invoke(app, ["world", "build", str(built), "--entities", "400", "--no-verify"])
    assert res.exit_code == 2 and "already exists" in res.output and "--overwrite" in res.output


def test_build_with_config_and_override(tmp_path: Path):
    cfg = tmp_path / "world.yaml"
    cfg.write_text("seed: 4\nnum_entities: 300\nverify: false\n")
    out = tmp_path / "w"
    res = runner.invoke(
        app, ["world", "build", str(out), "-c", str(cfg), "--set", "noise.distractor_rate=0.1"]
    )
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["counts"]["noise"]["distractor"] == 30
    distractor = next(
        d for d in map(json.loads, (out / "corpus.jsonl").read_text().splitlines()) if d["entity"] is None
    )
    res = runner.invoke(app, ["world", "show", str(out), distractor["url"]])
    assert res.exit_code == 0 and "not an entity article" in res.output and distractor["title"] in res.output
    bad = runner.invoke(app, ["world", "build", str(tmp_path / "x"), "--set", "noise.nope=1"])
    assert bad.exit_code == 2 and "unknown key" in bad.output and "'nope'" in bad.output


def test_info(built: Path):
    res = runner.invoke(app, ["world", "info", str(built)])
    assert res.exit_code == 0, res.output
    for part in ("Entities", "Relations", "Degree histogram", "born_in", "person", "not verified"):
        assert part in res.output


def test_show_by_id_name_and_url(built: Path):
    from searchgym.world.store import World

    w = World.load(built)
    ent = w.entities["person/000001"]
    url = w.doc_of(ent.id).url
    for key in (ent.id, ent.name.lower(), url):
        res = runner.invoke(app, ["world", "show", str(built), key])
        assert res.exit_code == 0, res.output
        assert ent.name in res.output and "born_in" in res.output and "Summary" in res.output
    res = runner.invoke(app, ["world", "show", str(built), "Nobody Atall"])
    assert res.exit_code == 2 and "no entity" in res.output


def test_export_corpus(built: Path, tmp_path: Path):
    out = tmp_path / "corpus.jsonl"
    res = runner.invoke(app, ["world", "export-corpus", str(built), str(out)])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    docs = [json.loads(line) for line in (built / "corpus.jsonl").read_text().splitlines()]
    assert len(rows) == len(docs)
    assert [r["id"] for r in rows] == [str(i) for i in range(len(docs))]  # Search-R1 reads corpus[int(id)]
    assert [r["doc_id"] for r in rows] == [d["id"] for d in docs]
    assert rows[0]["contents"] == docs[0]["title"] + "\n" + docs[0]["text"]


def test_damaged_world_is_a_clear_cli_error(built: Path, tmp_path: Path):
    import shutil

    w = tmp_path / "w"
    shutil.copytree(built, w)
    with open(w / "entities.jsonl", "a") as f:
        f.write("{}\n")
    res = runner.invoke(app, ["world", "info", str(w)])
    assert res.exit_code == 2 and "entities.jsonl" in res.output and "Traceback" not in res.output


def test_schema_command(tmp_path: Path):
    res = runner.invoke(app, ["world", "schema"])
    assert res.exit_code == 0 and "parent_of" in res.output and "1-n" in res.output
    dumped = runner.invoke(app, ["world", "schema", "--dump"])
    custom = tmp_path / "schema.yaml"
    custom.write_text(dumped.output.replace("target: city\n", "target: citty\n", 1))
    res = runner.invoke(app, ["world", "schema", str(custom)])
    assert res.exit_code == 2 and "unknown entity type 'citty'" in res.output


def test_overwrite_replaces_a_world_but_never_another_directory(built: Path, tmp_path: Path):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    res = runner.invoke(
        app, ["world", "build", str(precious), "--entities", "300", "--no-verify", "--overwrite"]
    )
    assert (
        res.exit_code == 2 and "without manifest.json" in res.stderr and "refusing to replace" in res.stderr
    )
    assert (precious / "todo.txt").read_text() == "keep me"
    w = tmp_path / "w"
    for seed in ("1", "2"):
        res = runner.invoke(
            app, ["world", "build", str(w), "--entities", "300", "--no-verify", "--seed", seed, "--overwrite"]
        )
        assert res.exit_code == 0, res.output
    assert json.loads((w / "manifest.json").read_text())["seed"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "w"]  # no temporaries, no .old copy


def test_world_files_follow_the_umask(tmp_path: Path):
    import os

    old = os.umask(0o022)
    try:
        res = runner.invoke(app, ["world", "build", str(tmp_path / "w"), "--entities", "300", "--no-verify"])
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.output
    modes = {p.name: p.stat().st_mode & 0o777 for p in [tmp_path / "w", *(tmp_path / "w").iterdir()]}
    assert modes == {name: 0o755 if name == "w" else 0o644 for name in modes}, modes


def test_build_prints_edges_dropped_per_relation_and_check(tmp_path: Path):
    out = tmp_path / "w"
    sets = ["--set", "noise.distractor_rate=0.1", "--set", "noise.conflict_rate=0.05"]
    res = runner.invoke(app, ["world", "build", str(out), "--entities", "500", "--seed", "3", *sets])
    assert res.exit_code == 0, res.output
    v = json.loads((out / "manifest.json").read_text())["verification"]
    rows = {}
    for line in res.output.splitlines():
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) == 7:
            rows[cells[0]] = cells[1:]
    assert set(v) | {"all"} <= set(rows)  # every relation's row, its name not cut off
    for rel, r in v.items():
        f = r["failures"]
        want = [r["total"], r["verified"], r["total"] - r["verified"], f["grounded"], f["retrievable"]]
        assert rows[rel] == [f"{n:,}" for n in [*want, f["contradicted"]]]
    assert sum(r["failures"]["contradicted"] for r in v.values()) > 0  # the planted conflicts are dropped
