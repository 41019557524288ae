"""`searchgym eval` and `searchgym teacher passrate` end to end through the CLI, with tiny saved models."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.eval.harness import pass_at_k, pass_rates, summarize
from searchgym.io import read_jsonl, write_jsonl
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
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
           "--out", str(out), "--set", "env.max_turns=4", "--set", "rollout.max_new_tokens=40")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["overall"]["em"] == 1.0 and summary["invalid_format_rate"] == 0.0
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
    out = tmp_path / "eval"
    invoke("eval", str(model_dir), "--world", str(world), "--tasks", "small", "--limit", "3", "--samples", "2",
           "--out", str(out), "--set", "rollout.max_new_tokens=8", "--set", "env.max_turns=2")  # fmt: skip
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 6 and summary["tasks"] == 3 and "pass@2" in summary
    assert summary["invalid_format_rate"] == 1.0  # an untrained model never writes a valid action
    assert summary["meta"]["protocol"] == "tags" and summary["meta"]["split"] == "test"
    invoke("teacher", "passrate", str(model_dir), "--world", str(world), "--tasks", "small", "--samples", "2",
           "--limit", "2", "--set", "rollout.max_new_tokens=8", "--set", "env.max_turns=1")  # fmt: skip
    rates = json.loads((world / "tasks" / "small" / "pass_rates.json").read_text())
    assert rates["k"] == 2 and len(rates["pass_rates"]) == 2
    assert set(rates["pass_rates"].values()) == {0.0}


def test_pass_at_k_and_summary_numbers():
    assert pass_at_k(4, 0, 2) == 0.0 and pass_at_k(4, 4, 1) == 1.0
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25) and pass_at_k(4, 1, 2) == pytest.approx(0.5)
    base = {"type": "chain", "hops": 1, "level": 1, "reward": 0.0, "f1": 0.0, "cover_em": 0.0, "turns": 2,
            "searches": 1, "accesses": 0, "format_ok": True, "invalid_turns": 0, "evidence_recall": 1.0,
            "has_evidence": True, "answer": "x", "done_reason": "answer"}  # fmt: skip
    records = [{**base, "task_id": t, "em": em, "success": em == 1.0}
               for t, em in [("a", 1.0), ("a", 0.0), ("b", 0.0), ("b", 0.0)]]  # fmt: skip
    s = summarize(records)
    assert s["pass@1"] == pytest.approx(0.25) and s["pass@2"] == pytest.approx(0.5)
    assert s["by"]["type"]["chain"]["em"] == pytest.approx(0.25) and s["actions"]["turns"] == 2.0
    # pass@k counts the env's success flag, not a second rule over the scores
    flipped = [{**r, "success": not r["success"]} for r in records]
    assert summarize(flipped)["pass@1"] == pytest.approx(0.75) and pass_rates(flipped) == {"a": 0.5, "b": 1.0}
