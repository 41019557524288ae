"""Checkpoint integrity and metrics truncation for resume (no training: directories made by hand)."""

from __future__ import annotations

import json

from searchgym.trainer.curriculum_cb import STATE_FILE
from searchgym.trainer.grpo import _truncate_metrics, is_complete, last_complete_checkpoint


def _ckpt(root, step: int, complete: bool, state_ok: bool = True):
    d = root / f"checkpoint-{step}"
    d.mkdir()
    (d / "trainer_state.json").write_text(json.dumps({"global_step": step}) if state_ok else '{"global_st')
    if complete:
        (d / STATE_FILE).write_text(json.dumps({"global_step": step}))
    return d


def test_last_complete_checkpoint_moves_incomplete_ones_aside(tmp_path):
    _ckpt(tmp_path, 5, True)
    _ckpt(tmp_path, 10, True)
    _ckpt(tmp_path, 15, False)  # killed before our state file was written
    _ckpt(tmp_path, 20, True, state_ok=False)  # killed while writing trainer_state.json
    last = last_complete_checkpoint(tmp_path)
    assert last == tmp_path / "checkpoint-10"
    assert is_complete(last)
    assert sorted(p.name for p in (tmp_path / "incomplete").iterdir()) == ["checkpoint-15", "checkpoint-20"]
    assert not (tmp_path / "checkpoint-15").exists()


def test_no_checkpoint(tmp_path):
    assert last_complete_checkpoint(tmp_path) is None
    _ckpt(tmp_path, 3, False)
    assert last_complete_checkpoint(tmp_path) is None


def test_truncate_metrics_drops_rows_after_the_checkpoint_and_a_cut_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [json.dumps({"step": s, "loss": 0.1 * s}) for s in (1, 2, 3, 4)]
    path.write_text("\n".join(rows) + '\n{"step": 5, "lo')
    _truncate_metrics(path, 2)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [1, 2]
