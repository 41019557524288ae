"""Bad command-line input: every case exits 2 with one stderr line naming the problem, no traceback, and leaves
every file as it was. In-process through typer's CliRunner; `{w}` is a verified world with task set `a`, `{tmp}`
a scratch directory (also the working directory)."""

from __future__ import annotations

import hashlib
import re
import socket
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from searchgym.cli import app, quiet_library_warnings

runner = CliRunner()
SMALL = [
    "--set",
    "chain_per_hops=5",
    "--set",
    "obfuscated=5",
    "--set",
    "intersection=5",
    "--set",
    "comparison=5",
]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens once the socket is closed: connection refused


CASES = [
    # invalid YAML override values (shared config code: world build, tasks build, train)
    ("world build {tmp}/x --set seed=[1", r"override 'seed=\[1': the value of seed is not valid YAML \(.+\)"),
    ("tasks build {w} --name n --set seed=[1", r"override 'seed=\[1': the value of seed is not valid YAML"),
    (
        "train -c cpu-tiny grpo.max_steps=[1",
        r"override 'grpo.max_steps=\[1': the value of grpo.max_steps is not",
    ),
    ("world build {tmp}/x --set seed=[1]", r"seed: expected int, got list \(\[1\]\)"),
    ("world build {tmp}/x --set noise.nope=1", r"unknown key\(s\) \['nope'\]; valid keys are \["),
    # ranges, refused before any work
    ("world build {tmp}/x --set noise.conflict_rate=5", r"noise.conflict_rate=5.0: must be in \[0, 1\]"),
    (
        "world build {tmp}/x --set noise.distractor_rate=-1",
        r"noise.distractor_rate=-1.0: must be in \[0, 1\]",
    ),
    ("world build {tmp}/x --set zipf_exponent=-3", r"zipf_exponent=-3.0: must be >= 0"),
    ("world build {tmp}/x --set max_degree=0", r"max_degree=0: must be at least 1"),
    ("world build {tmp}/x --entities 1000000000000", r"num_entities=1000000000000: must be 1 to 10,000,000"),
    ("world build {tmp}/x --entities 0", r"num_entities=0: must be 1 to 10,000,000"),
    ("tasks build {w} --name n --set chain_per_hops=-5", r"chain_per_hops=-5: a task count must be >= 0"),
    ("tasks build {w} --name n --set attempts_per_task=0", r"attempts_per_task=0: must be at least 1"),
    ("tasks oracle {w}/tasks/a --limit -1", r"--limit -1: give a number of tasks >= 1, or 0 for all"),
    ("tasks oracle {w}/tasks/a --max-turns 0", r"--max-turns 0: the oracle needs at least 1 turn"),
    (
        "tasks export {w}/tasks/a --format jsonl --out {tmp}/o.jsonl --split bogus",
        r"--split 'bogus': .+ has the splits \['dev', 'test', 'train'\]",
    ),
    (
        "tasks export {w}/tasks/a --format bogus --out {tmp}/o",
        r"unknown export format 'bogus'; choose one of jsonl \| parquet",
    ),
    # missing files
    ("world build {tmp}/x --config {tmp}/missing.yaml", r"config file .+/missing.yaml not found$"),
    ("tasks build {w} --config {tmp}/missing.yaml", r"config file .+/missing.yaml not found$"),
    ("world info {tmp}", r"is missing: not a world directory"),
    ("tasks build {tmp} --name n", r"not a world directory"),
    # names that would become paths outside the world, or replace it
    ("tasks build {w} --name '' --overwrite", r"task set name '' cannot be used as a directory name"),
    ("tasks build {w} --name ../../x", r"task set name '../../x' cannot be used as a directory name"),
    ("tasks build {w} --name a/b --overwrite", r"task set name 'a/b' cannot be used"),
    ("tasks build {w} --name . --overwrite", r"task set name '.' cannot be used"),
    ("tasks build {w} --name a", r"tasks/a exists; pass --overwrite to replace it"),
    # --overwrite never replaces a directory that is not the command's own output
    (
        "world build {tmp}/notes --overwrite --entities 300",
        r"notes is a directory without manifest.json.+refusing",
    ),
    (
        "tasks export {w}/tasks/a --format hf --out {tmp}/notes",
        r"without dataset_info.json.+refusing to replace",
    ),
    # lookups
    ("world show {w} 'Nobody Atall'", r"no entity, name or URL 'Nobody Atall'"),
    ("tasks show {w}/tasks/a nope", r"no task 'nope' in .+; ids look like"),
    # a failing paraphrase endpoint
    (
        "tasks build {w} --name n {small} --set paraphrase.enabled=true --set paraphrase.max_retries=0 "
        "--set paraphrase.base_url=http://127.0.0.1:{port}/v1",
        r"paraphrase endpoint: http://127.0.0.1:\d+/v1/chat/completions: failed after 1 attempt\(s\); .+"
        r"paraphrase.enabled=false",
    ),
]


def digest(*roots: Path) -> dict[str, str]:
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
        for root in roots
        for p in sorted([root, *root.rglob("*")])
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    w = tmp_path_factory.mktemp("bad-input") / "w"
    for args in (
        ["world", "build", str(w), "--entities", "300", "--seed", "2"],
        ["tasks", "build", str(w), "--name", "a", *SMALL],
    ):
        res = runner.invoke(app, args)
        assert res.exit_code == 0, res.output
    return w


@pytest.mark.parametrize("command, pattern", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_changes_nothing(
    world: Path, tmp_path: Path, monkeypatch, command, pattern
):
    import shlex

    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    args = shlex.split(command.format(w=world, tmp=tmp_path, port=_closed_port(), small=" ".join(SMALL)))
    before = digest(world, tmp_path)
    res = runner.invoke(app, args)
    lines = res.stderr.strip().splitlines()
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert len(lines) == 1, res.stderr
    assert re.search(pattern, lines[0]) and lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in res.output
    assert digest(world, tmp_path) == before


def test_a_bug_is_not_dressed_up_as_a_user_error(monkeypatch):
    """Only SearchGymError (and OSError) become one line; a KeyError from a bug keeps its traceback."""
    import searchgym.cli.world as world_cli

    def broken(*args, **kwargs):
        raise KeyError("entity_types")

    monkeypatch.setattr(world_cli, "read_manifest", broken, raising=False)
    monkeypatch.setattr("searchgym.world.store.read_manifest", broken)
    res = runner.invoke(app, ["world", "info", "."])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError) and "error:" not in res.stderr


def test_library_deprecation_warnings_are_quiet_ours_are_not():
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        quiet_library_warnings()
        for module in ("transformers.training_args", "trl.trainer.grpo_config", "searchgym.trainer.grpo"):
            warnings.warn_explicit("`x` is deprecated", FutureWarning, f"{module}.py", 1, module=module)
    assert [str(w.filename) for w in seen] == ["searchgym.trainer.grpo.py"]
