"""Every export is written and read back by the library its consumers use; the rows are read the way Search-R1,
ASearcher, verl and TRL read them (their readers reproduced from their code: Search-R1 @a14dc3a, ASearcher @813e804,
see /work/notes/contracts.md); the CLI drives the whole flow. verl's own loaders run in test_integrations_verl.py."""

from __future__ import annotations

import json
import re
import string

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from searchgym.cli import app
from searchgym.env import EnvConfig, prompt_messages, tool_loop_messages
from searchgym.index.build import load_corpus_jsonl
from searchgym.integrations.export import (
    DATA_SOURCE,
    FORMATS,
    ExportOptions,
    export_corpus,
    export_tasks,
    read_back,
)
from searchgym.integrations.rewards import compute_score
from searchgym.io import read_jsonl
from searchgym.pipeline import build_world
from searchgym.tasks.config import TaskConfig
from searchgym.tasks.synth import build_tasks
from searchgym.types import Task
from searchgym.world.build import WorldConfig

CFG = TaskConfig(chain_per_hops=4, obfuscated=8, intersection=5, comparison=6)
SEARCHR1_SOURCES = {"nq", "triviaqa", "popqa", "hotpotqa", "2wikimultihopqa", "musique", "bamboogle"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        WorldConfig(seed=11, num_entities=300), tmp_path_factory.mktemp("w") / "w", progress=False
    )


@pytest.fixture(scope="module")
def tasks(world):
    return build_tasks(world, CFG, progress=False)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_export_reads_back(fmt, tasks, tmp_path):
    out = export_tasks(tasks, fmt, tmp_path / f"out.{fmt}", ExportOptions(world="/w"))
    rows = read_back(fmt, out)
    assert len(rows) == len(tasks)
    first, task = rows[0], tasks[0]
    if fmt in ("jsonl", "parquet", "hf"):
        assert first["id"] == task.id and first["answer"] == task.answer
        assert [s["url"] for s in first["evidence"]] == [s.url for s in task.evidence]
        meta = first["meta"] if fmt == "jsonl" else json.loads(first["meta"])
        assert meta["form"] == task.meta["form"]
    else:
        question = first["question"] if fmt == "asearcher" else first["prompt"][-1]["content"]
        assert task.question in question


def test_verl_rows(tasks, tmp_path):
    """Every row has the same nested keys (parquet structs: a missing key comes back None), the agent loop's task
    and env config round-trip, and the prompt is the env's for the chosen preset."""
    rows = read_back("verl", export_tasks(tasks, "verl", tmp_path / "v.parquet", ExportOptions(world="/w")))
    keys = {json.dumps(sorted(r["extra_info"])) for r in rows}
    assert len(keys) == 1 and not any(v is None for r in rows for v in r["extra_info"].values())
    structs = [
        c for r in rows for t in r["extra_info"]["tools_kwargs"].values() for c in t["create_kwargs"].values()
    ]
    assert None not in structs  # every struct field is set in every row
    assert {
        json.dumps(sorted(t["create_kwargs"])) for r in rows for t in r["extra_info"]["tools_kwargs"].values()
    } == {'["env", "task", "world"]'}
    for i, (row, task) in enumerate(zip(rows, tasks, strict=True)):
        info = row["extra_info"]
        assert info["index"] == i and info["task_id"] == task.id and info["world"] == "/w"
        assert Task.from_dict(json.loads(info["task"])) == task
        cfg = EnvConfig.from_dict(json.loads(info["env"]))
        assert cfg == EnvConfig.preset("tag") and row["prompt"] == prompt_messages(task, cfg)
        assert row["data_source"] == DATA_SOURCE and row["agent_name"] == "searchgym"
        assert row["reward_model"] == {"style": "rule", "ground_truth": {"target": task.answers}}
        assert sorted(info["tools_kwargs"]) == ["access", "answer", "search"]
    json_rows = read_back(
        "verl",
        export_tasks(
            tasks,
            "verl",
            tmp_path / "j.parquet",
            ExportOptions("json", agent="tool_agent", env={"max_turns": 4}),
        ),
    )
    cfg = EnvConfig.preset("json", max_turns=4)
    assert json_rows[0]["prompt"] == tool_loop_messages(tasks[0], cfg)
    assert json_rows[0]["agent_name"] == "tool_agent"
    assert EnvConfig.from_dict(json.loads(json_rows[0]["extra_info"]["env"])) == cfg
    r1 = read_back("verl", export_tasks(tasks, "verl", tmp_path / "r.parquet", ExportOptions("searchr1")))
    assert sorted(r1[0]["extra_info"]["tools_kwargs"]) == ["answer", "search"]


def _searchr1_extract(solution_str: str) -> str | None:
    """Search-R1 qa_em.extract_solution: last <answer> match, and only when there are at least two."""
    matches = list(re.finditer(r"<answer>(.*?)</answer>", solution_str, re.DOTALL))
    return matches[-1].group(1).strip() if len(matches) > 1 else None


def _searchr1_normalize(s: str) -> str:
    """Search-R1 qa_em.normalize_answer."""
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return " ".join(re.sub(r"\b(a|an|the)\b", " ", s).split())


def test_searchr1_rows_as_search_r1_reads_them(tasks, tmp_path):
    out = export_tasks(tasks, "searchr1", tmp_path / "train.parquet")
    df = pd.read_parquet(out)  # Search-R1's RLHFDataset reads with pandas: lists arrive as numpy arrays
    assert set(df["data_source"]) <= SEARCHR1_SOURCES  # main_ppo._select_rm_score_fn raises otherwise
    assert list(df["extra_info"].map(lambda e: e["index"])) == list(range(len(tasks)))  # uid = index: unique
    for (_, row), task in zip(df.iterrows(), tasks, strict=True):
        target = row["reward_model"]["ground_truth"]["target"]
        assert isinstance(target, np.ndarray) and list(target) == task.answers
        assert list(row["golden_answers"]) == list(row["answer"]) == task.answers and row["id"] == task.id
        prompt = row["prompt"][0]["content"]
        assert row["prompt"][0]["role"] == "user" and prompt.endswith(f"Question: {task.question}\n")
        assert "<access>" not in prompt  # Search-R1's loop knows only search and answer
        # the reward decodes prompt + response: the prompt's example is match 1, the model's answer the last
        assert _searchr1_extract(prompt + "<think> x </think>") is None
        response = (
            f"<search> q </search>\n\n<information>Doc 1</information>\n\n<answer> {task.answer} </answer>"
        )
        got = _searchr1_extract(prompt + response)
        assert got == task.answer
        assert _searchr1_normalize(got) in {_searchr1_normalize(t) for t in target}
    assert (df["ability"] == "fact-reasoning").all()
    other = read_back(
        "searchr1",
        export_tasks(tasks, "searchr1", tmp_path / "b.parquet", ExportOptions(data_source="hotpotqa")),
    )
    assert {r["data_source"] for r in other} == {"hotpotqa"}


def test_asearcher_rows_as_asearcher_reads_them(tasks, tmp_path):
    from datasets import load_dataset

    out = export_tasks(tasks, "asearcher", tmp_path / "train.jsonl")
    data = load_dataset("json", data_files=str(out))["train"]  # asearcher.py loads its JSONL like this
    # load_metadata: key = idx, else qid, else id (as a string); the rollout's qid = query_id, else id, else qid
    id2info = {
        str(d.get("idx", d.get("qid", d["id"]))): d for d in map(json.loads, out.read_text().splitlines())
    }
    for row, task in zip(data, tasks, strict=True):
        qid = str(next(row[k] for k in ("query_id", "id", "qid") if row.get(k) is not None))
        truth = id2info[qid.split("@")[0]]["answer"]
        assert [str(x) for x in truth] == task.answers and row["question"] == task.question
    # evaluation: {data_dir}/{name}/{split}.jsonl, `answer` (or `gt`) and `question`
    assert all("answer" in r and "question" in r for r in read_jsonl(out))


def test_trl_rows_reset_the_environment(tasks, world, tmp_path):
    from datasets import load_dataset

    from searchgym.index.build import build_index
    from searchgym.integrations.trl_env import environment_factory

    build_index(world.path)
    out = export_tasks(tasks, "trl", tmp_path / "trl.jsonl", ExportOptions(env={"max_turns": 3}))
    data = load_dataset("json", data_files=str(out))["train"]
    env = environment_factory(world.path, {"max_turns": 3})()
    row = data[0]
    assert row["prompt"] == tool_loop_messages(tasks[0], EnvConfig(protocol="json", max_turns=3))
    env.reset(**row)  # TRL calls reset with the whole row
    assert env.answer(tasks[0].answer) == "Answer recorded." and env.get_reward() == 1.0
    assert row["answers"] == tasks[0].answers


def test_export_options_are_checked(tasks, tmp_path):
    bad = [
        ("trl", ExportOptions(protocol="tag"), "trl export takes json"),
        ("jsonl", ExportOptions(protocol="tag"), "carries no prompt"),
        ("asearcher", ExportOptions(data_source="nq"), "no data_source column"),
        ("verl", ExportOptions(agent="tool_agent"), "needs --protocol json"),
        ("verl", ExportOptions(agent="react"), "choose one of searchgym | tool_agent"),
        ("searchr1", ExportOptions(agent="tool_agent"), "no agent_name column"),
        ("verl", ExportOptions(data_source=" "), "must not be empty"),
        ("csv", ExportOptions(), "unknown export format 'csv'"),
    ]
    for fmt, opts, message in bad:
        with pytest.raises(ValueError, match=re.escape(message)):
            export_tasks(tasks, fmt, tmp_path / "x", opts)
        assert not (tmp_path / "x").exists()


def test_corpus_as_search_r1_and_asearcher_read_it(world, tmp_path):
    corpus, pages = tmp_path / "corpus.jsonl", tmp_path / "pages.jsonl"
    n = export_corpus(world.path, corpus, pages)
    # Search-R1's load_docs / pyserini's JsonCollection: one JSON object per line
    docs = [json.loads(line) for line in corpus.read_text().splitlines()]
    ours = list(read_jsonl(world.path / "corpus.jsonl"))
    assert n == len(docs) == len(ours)
    for i, (row, doc) in enumerate(zip(docs, ours, strict=True)):
        assert docs[int(row["id"])] is row and row["id"] == str(i)  # corpus[int(hit.docid)]
        assert row["contents"].split("\n")[0] == row["title"] == doc["title"]  # Search-R1: title = line 1
        assert (row["url"], row["doc_id"], row["entity"]) == (doc["url"], doc["id"], doc["entity"] or "")
    # ASearcher's PageAccess: url-keyed rows, "index.php/" rewritten before the lookup, the client reads contents
    page_by_url = {p["url"]: p for p in map(json.loads, pages.read_text().splitlines())}
    for doc in ours:
        page = page_by_url.get(doc["url"].replace("index.php/", "index.php?title="))
        assert page is not None and page["contents"] == f"{doc['title']}\n{doc['text']}"
    # our own Search-R1 corpus reader gets the same documents back
    assert [(d.title, d.text) for d in load_corpus_jsonl(corpus)] == [(d["title"], d["text"]) for d in ours]


def test_reward_function_scores_tag_and_json_answers(tasks):
    task = tasks[0]
    truth = {"target": np.array(task.answers, dtype=object)}  # as pandas gives it to verl's reward manager
    tag = f"<think> ok </think><search> a </search><information> x </information><answer> {task.answer} </answer>"
    call = json.dumps({"name": "answer", "arguments": {"answer": task.answer}})
    json_form = f'<tool_call>{{"name": "search", "arguments": {{"query": "a"}}}}</tool_call> x <tool_call>{call}</tool_call>'
    for text in (tag, json_form):
        s = compute_score(DATA_SOURCE, text, truth, {"index": 0})
        assert s == {"score": 1.0, "em": 1.0, "f1": 1.0, "cover_em": 1.0, "answered": 1.0}
    assert compute_score(DATA_SOURCE, "<search> a </search>", truth)["answered"] == 0.0
    later = f"<answer> nobody </answer> then <tool_call>{call}</tool_call>"
    assert compute_score(DATA_SOURCE, later, truth)["em"] == 1.0  # the last answer counts
    earlier = f"<tool_call>{call}</tool_call><answer> nobody </answer>"
    assert compute_score(DATA_SOURCE, earlier, truth)["em"] == 0.0
    partial = compute_score(DATA_SOURCE, f"<answer> {task.answer} Inc </answer>", truth, metric="em")
    assert partial["score"] == 0.0 < partial["f1"] < 1.0


def test_cli_build_export_show_oracle(world, tmp_path):
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "tasks",
            "build",
            str(world.path),
            "--name",
            "cli",
            "--set",
            "chain_per_hops=3",
            "--set",
            "obfuscated=4",
            "--set",
            "intersection=3",
            "--set",
            "comparison=4",
        ],
    )
    assert r.exit_code == 0, r.output
    taskset = world.path / "tasks" / "cli"
    r = runner.invoke(app, ["tasks", "build", str(world.path), "--name", "cli"])
    assert r.exit_code != 0 and "--overwrite" in r.output
    out = tmp_path / "v.parquet"
    r = runner.invoke(
        app,
        ["tasks", "export", str(taskset), "--format", "verl", "--out", str(out), "--protocol", "json"]
        + ["--set", "max_turns=16"],
    )
    assert r.exit_code == 0 and "rows (verl)" in r.output, r.output
    row = read_back("verl", out)[0]
    assert row["extra_info"]["world"] == str(world.path.resolve())
    assert EnvConfig.from_dict(json.loads(row["extra_info"]["env"])) == EnvConfig.preset("json", max_turns=16)
    for args, message in (
        (["--format", "trl", "--protocol", "tag"], "trl export takes json"),
        (["--format", "verl", "--set", "max_turns=0"], "max_turns must be >= 1"),
        (["--format", "jsonl", "--set", "max_turns=3"], "carries no prompt"),
        (["--format", "csv"], "unknown export format 'csv'"),
    ):
        r = runner.invoke(app, ["tasks", "export", str(taskset), "--out", str(tmp_path / "bad"), *args])
        assert r.exit_code == 2 and message in r.output and not (tmp_path / "bad").exists(), r.output
    corpus, pages = tmp_path / "c.jsonl", tmp_path / "p.jsonl"
    r = runner.invoke(app, ["world", "export-corpus", str(world.path), str(corpus), "--pages", str(pages)])
    assert r.exit_code == 0 and "documents" in r.output and "pages" in r.output, r.output
    assert json.loads(corpus.read_text().splitlines()[0])["id"] == "0" and pages.exists()
    r = runner.invoke(app, ["world", "export-corpus", str(world.path), str(corpus), "--pages", str(corpus)])
    assert r.exit_code == 2 and "its own name" in r.output
    task_id = json.loads((taskset / "tasks.jsonl").read_text().splitlines()[-1])["id"]
    r = runner.invoke(app, ["tasks", "show", str(taskset), task_id])
    assert r.exit_code == 0 and "Evidence:" in r.output and "https://" in r.output, r.output
    r = runner.invoke(app, ["tasks", "show", str(taskset), "nope"])
    assert r.exit_code != 0 and "no task 'nope'" in r.output
    r = runner.invoke(app, ["tasks", "oracle", str(taskset)])
    assert r.exit_code == 0 and "100.0%" in r.output, r.output
    assert (taskset / "transcripts.jsonl").exists()
