"""`searchgym eval` and `searchgym teacher passrate` end to end through the CLI, with tiny saved models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.env.records import EpisodeSummary
from searchgym.eval.harness import EpisodeRecord, EvalConfig, eval_meta, pass_at_k, pass_rates, summarize
from searchgym.io import read_jsonl, write_jsonl
from searchgym.models.card import ModelCard, read_card, write_card
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.rollout.episodes import Trajectory
from test_rollout_common import DOCS, TASKS, tiny_agent

runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.output


@pytest.fixture(scope="module")
def agent_dir(tmp_path_factory):
    model, tok = tiny_agent()
    path = tmp_path_factory.mktemp("agent")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_eval_on_an_external_qa_set_scores_the_trained_agent(agent_dir, tmp_path):
    write_jsonl(tmp_path / "corpus.jsonl", ({"id": d.id, "contents": d.contents} for d in DOCS))
    qa = [
        {"id": t.id, "question": t.question, "golden_answers": t.answers, "data_source": "toy"} for t in TASKS
    ]
    write_jsonl(tmp_path / "qa.jsonl", qa)
    out = tmp_path / "eval"
    invoke("eval", str(agent_dir), "--qa", str(tmp_path / "qa.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"),
           "--out", str(out), "--protocol", "tags", "--set", "env.max_turns=4",
           "--set", "rollout.max_new_tokens=40")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["em"] == 1.0 and summary["invalid_format_rate"] == 0.0
    assert summary["meta"]["world"] is None and summary["by"]["source"]["toy"]["success"] == 1.0
    assert summary["actions"]["searches"] == 1.0 and summary["evidence_recall"] is None
    rows = list(read_jsonl(out / "trajectories.jsonl"))
    assert [r["answer"] for r in rows] == [t.answer for t in TASKS]
    assert all(sum(r["trajectory"]["env_mask"]) < len(r["trajectory"]["completion_ids"]) for r in rows)
    for name in ("report.md", "by_type.png", "by_hops.png", "by_level.png", "actions.png"):
        assert (out / name).stat().st_size > 0
    assert "| toy | 3 | 100.0 |" in (out / "report.md").read_text()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    w = tmp_path_factory.mktemp("w") / "world"
    invoke("world", "build", str(w), "--entities", "300", "--seed", "1")
    invoke("index", "build", str(w))
    invoke("tasks", "build", str(w), "--name", "small")
    return w


def test_eval_and_passrate_on_a_world_with_pass_at_k(world, tmp_path):
    texts = [json.loads(line)["text"] for line in (world / "corpus.jsonl").read_text().splitlines()[:200]]
    tok = train_tokenizer(texts, vocab_size=400, special_tokens=PROTOCOL_TAGS)
    model_dir = tmp_path / "student"
    tiny_llama(
        tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)
    ).save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    write_card(model_dir, ModelCard("tags", "test"))  # no --protocol below: the card decides
    assert read_card(model_dir) == ModelCard("tags", "test")
    out = tmp_path / "eval"
    invoke("eval", str(model_dir), "--world", str(world), "--tasks", "small", "--limit", "3", "--samples", "2",
           "--out", str(out), "--set", "rollout.max_new_tokens=8", "--set", "env.max_turns=2")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 6 and summary["tasks"] == 3 and "pass@2" in summary
    assert summary["invalid_format_rate"] == 1.0  # an untrained model never writes a valid action
    assert summary["meta"]["protocol"] == "tags" and summary["meta"]["split"] == "test"
    assert summary["meta"]["world"] == str(world.resolve()) and summary["meta"]["task_set"] == "small"
    invoke("teacher", "passrate", str(model_dir), "--world", str(world), "--tasks", "small", "--samples", "2",
           "--limit", "2", "--set", "rollout.max_new_tokens=8", "--set", "env.max_turns=1")  # fmt: skip
    rates = json.loads((world / "tasks" / "small" / "pass_rates.json").read_text())
    assert rates["k"] == 2 and len(rates["pass_rates"]) == 2
    assert set(rates["pass_rates"].values()) == {0.0}


def _record(task_id: str, em: float, success: bool, hops: int = 1) -> EpisodeRecord:
    ep = EpisodeSummary(
        done_reason="answer", terminated=True, truncated=False, answer="x", scores={"em": em, "f1": em, "cover_em": em},
        outcome=em, success=success, format_ok=True, reward=em, turns=2, searches=1, accesses=0, invalid_turns=0,
        format_errors=0, surfaced_recall=1.0, opened_recall=0.0, evidence_recall=1.0,
    )  # fmt: skip
    return EpisodeRecord(task_id, 0, "q?", ("x",), "chain", hops, hops, "searchgym", True, ep,
                         Trajectory(task_id, [1], episode=ep))  # fmt: skip


def test_pass_at_k_and_summary_numbers():
    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 2) == pytest.approx(0.5)
    records = [_record(t, em, em == 1.0) for t, em in [("a", 1.0), ("a", 0.0), ("b", 0.0), ("b", 0.0)]]
    s = summarize(records)
    assert s["pass@1"] == pytest.approx(0.25) and s["pass@2"] == pytest.approx(0.5)
    assert s["by"]["type"]["chain"]["em"] == pytest.approx(0.25) and s["actions"]["turns"] == 2.0
    # pass@k counts the env's success flag, not a second rule over the scores
    flipped = [_record(r.task_id, r.score("em"), not r.success) for r in records]
    assert summarize(flipped)["pass@1"] == pytest.approx(0.75) and pass_rates(flipped) == {"a": 0.5, "b": 1.0}
    assert summarize(flipped)["overall"]["success"] == pytest.approx(0.75)


def test_levels_sort_numerically_and_meta_names_world_and_task_set(tmp_path):
    records = [_record(f"t{h}", 0.0, False, hops=h) for h in (10, 2, 1)]
    assert list(summarize(records)["by"]["level"]) == ["1", "2", "10"]
    cfg = EvalConfig()
    inside = eval_meta("m", "small", "test", cfg, world=tmp_path, task_set=tmp_path / "tasks" / "small")
    assert inside["world"] == str(tmp_path) and inside["task_set"] == "small"
    outside = eval_meta("m", "x", "test", cfg, world=tmp_path, task_set=tmp_path / "elsewhere" / "x")
    assert outside["task_set"] == str(tmp_path / "elsewhere" / "x")
    assert inside["success_rule"] == "em >= 1.0" and inside["protocol"] == "tags"


def test_eval_without_card_or_protocol_refuses_in_one_line(tmp_path):
    (tmp_path / "m").mkdir()
    res = runner.invoke(app, ["eval", str(tmp_path / "m"), "--world", str(tmp_path)])
    assert res.exit_code == 2 and "searchgym_card.json" in res.output and "--protocol tags" in res.output
    res = runner.invoke(app, ["eval", str(tmp_path / "m"), "--world", str(tmp_path), "--protocol", "xml"])
    assert res.exit_code == 2 and "--protocol 'xml'" in res.output
