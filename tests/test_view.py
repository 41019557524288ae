"""`searchgym view` through its real CLI and HTTP server on 127.0.0.1: lists, filters, episodes with evidence
chains, TRAC tokens, comparisons, world pages, request validation and path traversal attempts."""

from __future__ import annotations

import contextlib
import http.client
import json
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import httpx
import pytest

from searchgym.io import read_jsonl, write_json
from searchgym.view import records
from test_view_common import demo_dir, eval_after, eval_before, train_run, world


@contextlib.contextmanager
def serve(*args: str):
    """Start `searchgym view ARGS --port 0` and yield its base URL; stop it afterwards."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "searchgym.cli", "view", *args, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = None
        for line in proc.stdout:
            if "viewer on http" in line:
                url = line.split(" on ")[1].split()[0].rstrip("/")
                break
        assert url, proc.stderr.read()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def demo():
    with serve(str(demo_dir())) as url:
        yield url


def get(url: str, path: str, **params) -> dict:
    r = httpx.get(url + path, params=params, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def raw(url: str, path: str, method: str = "GET", host: str | None = None) -> tuple[int, bytes]:
    """A request with the path sent byte for byte (no client-side normalisation of ../ or %2e)."""
    u = urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    conn.putrequest(method, path, skip_host=host is not None)
    if host is not None:
        conn.putheader("Host", host)
    conn.endheaders()
    resp = conn.getresponse()
    return resp.status, resp.read()


def test_demo_lists_its_runs_and_filters_update_counts(demo):
    info = get(demo, "/api/info")
    assert [r["id"] for r in info["runs"]] == ["before", "after", "rl"] and info["compare"] == [
        "before",
        "after",
    ]
    assert info["world"] == str(world()) and info["tasks"] > 0
    rows = list(read_jsonl(eval_after() / "trajectories.jsonl"))
    page = get(demo, "/api/runs/after/episodes")
    assert page["total"] == len(rows) and page["stats"]["n"] == len(rows)
    assert page["stats"]["success"] == pytest.approx(sum(r["em"] >= 1 for r in rows) / len(rows))
    ok = get(demo, "/api/runs/after/episodes", success="true")
    assert ok["stats"]["n"] == sum(r["em"] >= 1 for r in rows) and ok["stats"]["success"] == 1.0
    bad = get(demo, "/api/runs/after/episodes", invalid="true")
    assert bad["stats"]["n"] == sum(not r["format_ok"] for r in rows) > 0
    chain = get(demo, "/api/runs/after/episodes", type="chain", hops=1)
    assert chain["stats"]["n"] == sum(r["type"] == "chain" and r["hops"] == 1 for r in rows)
    assert set(chain["groups"]["type"]) == {"chain"}
    word = rows[3]["question"].split()[-1].strip("?").lower()
    found = get(demo, "/api/runs/after/episodes", q=word.upper())
    assert found["stats"]["n"] == sum(
        word in r["question"].lower() or word in (r["answer"] or "").lower() for r in rows
    )
    top = get(demo, "/api/runs/after/episodes", sort="reward", desc="true", limit=3)["rows"]
    assert [r["reward"] for r in top] == sorted((r["reward"] for r in rows), reverse=True)[:3]
    paged = get(demo, "/api/runs/after/episodes", offset=10, limit=5)
    assert [r["i"] for r in paged["rows"]] == list(range(10, len(rows)))
    splits = get(demo, "/api/runs/after/episodes", split="test")["stats"]["n"]
    assert 0 < splits < len(rows)  # the split comes from the task set: eval records do not carry it


def test_episode_turns_and_evidence_chain_match_the_records(demo):
    rows = list(read_jsonl(eval_after() / "trajectories.jsonl"))
    i = next(k for k, r in enumerate(rows) if r["em"] == 1 and r["accesses"] > 0)
    ep = get(demo, f"/api/runs/after/episodes/{i}")
    steps = rows[i]["trajectory"]["steps"]
    assert [t["kind"] for t in ep["turns"]] == [s.get("tool") or s.get("kind") for s in steps]
    search = next(t for t, s in zip(ep["turns"], steps, strict=True) if t["kind"] == "search")
    assert [h["url"] for h in search["hits"]] == next(s["hit_urls"] for s in steps if s.get("hit_urls"))
    assert all(h["title"] for h in search["hits"])
    chain = ep["evidence"]
    assert chain["steps"] and chain["broke_at"] is None and chain["complete"]
    first = chain["steps"][0]
    assert first["status"] == "read" and first["surfaced_at"] and first["edge"]["sentence"]
    assert ep["reward_parts"]["reward"] == rows[i]["reward"] and ep["reward_parts"]["format_ok"] is True
    failed = get(demo, f"/api/runs/before/episodes/{i}")
    assert failed["evidence"]["broke_at"] == 1 and failed["evidence"]["steps"][0]["status"] == "missed"
    assert failed["reward_parts"]["gated"] is True  # invalid format: the gate set the reward


def test_rollout_tokens_carry_the_recorded_trac_terms(demo):
    recs = list(read_jsonl(train_run() / "rollouts.jsonl"))
    ep = get(demo, "/api/runs/rl/episodes/5")
    tok = ep["tokens"]
    assert tok["text"] == recs[5]["tokens"] and tok["mask"] == recs[5]["env_mask"]
    assert (
        tok["r_hat"] == pytest.approx(recs[5]["trac"]["r_hat"])
        and tok["trac"]["w_d"] == recs[5]["trac"]["w_d"]
    )
    assert [g["success"] for g in ep["group"]] == recs[5]["trac"]["group_success"]
    assert [t["kind"] for t in ep["turns"]] == [s.get("tool") or s.get("kind") for s in recs[5]["steps"]]
    one_step = get(demo, "/api/runs/rl/episodes", step=2)
    assert one_step["stats"]["n"] == sum(r["step"] == 2 for r in recs)


def test_compare_counts_the_flipped_tasks(demo):
    before = {r["task_id"]: r["em"] >= 1 for r in read_jsonl(eval_before() / "trajectories.jsonl")}
    after = {r["task_id"]: r["em"] >= 1 for r in read_jsonl(eval_after() / "trajectories.jsonl")}
    fixed = sum(not before[t] and after[t] for t in before)
    out = get(demo, "/api/compare", a="before", b="after")
    assert out["counts"]["fixed"] == fixed > 0 and out["total"] == len(before)
    assert out["counts"]["broken"] == sum(before[t] and not after[t] for t in before)
    only = get(demo, "/api/compare", a="before", b="after", status="fixed")
    assert {it["task_id"] for it in only["items"]} == {t for t in before if not before[t] and after[t]}


def test_world_pages_by_id_name_and_url(demo):
    doc = json.loads((world() / "corpus.jsonl").read_text().splitlines()[0])
    by_id = get(demo, "/api/world/entity", key=doc["entity"])
    assert by_id["document"]["url"] == doc["url"] and by_id["edges"]
    assert get(demo, "/api/world/entity", key=doc["url"])["entity"] == by_id["entity"]
    assert get(demo, "/api/world/entity", key=by_id["entity"]["name"].upper())["entity"] == by_id["entity"]
    edge = by_id["edges"][0]
    assert get(demo, "/api/world/entity", key=edge["other"])["entity"]["name"] == edge["other_name"]
    assert httpx.get(demo + "/api/world/entity", params={"key": "nobody/1"}).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/static/..%2f..%2f..%2fpyproject.toml",
        "/static/%2e%2e/%2e%2e/%2e%2e/pyproject.toml",
        "/static/../../../pyproject.toml",
        "/static/%2e%2e%2f%2e%2e%2fsummary.json",
        "/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/api/runs/..%2f..%2fetc/episodes",
        "/api/runs/after/episodes/..%2f..%2fsummary.json",
        "/static/app.js%00.py",
        "/api/world/entity?key=..%2f..%2f..%2fetc%2fpasswd",
    ],
)
def test_no_path_traversal(demo, path):
    status, body = raw(demo, path)
    assert status in (404, 422), (status, body[:200])
    assert b"[build-system]" not in body and b"root:" not in body and b'"meta"' not in body


def test_every_request_is_validated(demo):
    for params in ({"sort": "__class__"}, {"limit": 100000}, {"offset": -1}, {"hops": "x"}, {"q": "x" * 500}):
        assert httpx.get(demo + "/api/runs/after/episodes", params=params).status_code == 422, params
    assert httpx.get(demo + "/api/runs/nope/episodes").status_code == 404
    assert httpx.get(demo + "/api/runs/after/episodes/12345").status_code == 404
    assert (
        httpx.get(demo + "/api/compare", params={"a": "before", "b": "after", "status": "x"}).status_code
        == 422
    )
    assert raw(demo, "/api/info", host="attacker.example")[0] == 400  # no DNS rebinding
    assert raw(demo, "/api/info", method="POST")[0] == 405
    r = httpx.get(demo + "/")
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
    assert httpx.get(demo + "/static/app.js").status_code == 200


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "searchgym.cli", "view", *args], capture_output=True, text=True, timeout=120)  # fmt: skip


def test_bad_paths_give_one_clear_line(tmp_path):
    for target, words in ((tmp_path / "missing", "does not exist"), (tmp_path, "is not an eval directory")):
        out = _cli(str(target), "--port", "0")
        lines = out.stderr.strip().splitlines()
        assert out.returncode == 2 and len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "trajectories.jsonl").write_text('{"task_id": "a"}\n{not json\n')
    out = _cli(str(tmp_path / "e"), "--port", "0")
    assert out.returncode == 2 and "record 2 is not valid JSON" in out.stderr
    out = _cli(str(eval_after()), "--world", str(tmp_path), "--port", "0")
    assert out.returncode == 2 and "is not a world directory" in out.stderr


def test_a_growing_rollouts_file_is_picked_up(tmp_path):
    run = tmp_path / "rl"
    shutil.copytree(train_run(), run)
    lines = (run / "rollouts.jsonl").read_text().splitlines(keepends=True)
    (run / "rollouts.jsonl").write_text("".join(lines[:4]))
    with serve(str(run), "--world", str(world())) as url:
        assert get(url, "/api/runs/rl/episodes")["total"] == 4
        with open(run / "rollouts.jsonl", "a") as f:
            f.write("".join(lines[4:8]) + lines[8][:50])  # the last line is still being written
        assert get(url, "/api/runs/rl/episodes")["total"] == 8
        assert get(url, "/api/runs/rl/episodes/7")["row"]["task_id"] == json.loads(lines[7])["task_id"]


def test_demo_json_evaluations_and_compare_flag(tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    (demo / "world").symlink_to(world())
    for stage, source in (("before", eval_before()), ("after", eval_after())):
        rows = [{"task_id": r["task_id"], "level": r["level"], "reward": r["reward"], "success": float(r["em"])}
                for r in read_jsonl(source / "trajectories.jsonl")]  # fmt: skip
        write_json(demo / f"eval_{stage}.json", {"success": 0.0, "rows": rows})
    with serve(str(demo)) as url:
        info = get(url, "/api/info")
        assert [r["kind"] for r in info["runs"]] == ["demo-eval", "demo-eval"]
        ep = get(url, "/api/runs/after/episodes/0")
        assert (
            ep["row"]["question"] and ep["turns"] == [] and ep["evidence"]["steps"]
        )  # question from the task set
        assert get(url, "/api/compare", a="before", b="after")["counts"]["fixed"] > 0
    with serve(str(eval_before()), "--compare", str(eval_after()), "--world", str(world())) as url:
        a, b = get(url, "/api/info")["compare"]
        assert get(url, "/api/compare", a=a, b=b)["counts"]["fixed"] > 0


def test_adapter_reads_typed_and_legacy_step_records():
    typed = {
        "task_id": "t",
        "steps": [
            {"turn": 1, "tool": "search", "args": {"query": "q"}, "error": None, "shown_hits": [
                {"rank": 1, "url": "u1", "title": "T1", "snippet": "s1"}]},
            {"turn": 2, "tool": "access", "args": {"url": "u1", "page": 2}, "url": "u1", "page": 2, "error": None,
             "shown_page": {"url": "u1", "title": "T1", "part": 2, "parts": 3, "text": "body"}},
        ],
        "episode": {"scores": {"em": 1.0, "f1": 1.0}, "success": True, "reward": 1.0, "outcome": 1.0,
                    "terminated": True, "truncated": False, "format_ok": True},
    }  # fmt: skip
    t = records.turns(typed)
    assert t[0]["arg"] == "q" and t[0]["hits"][0]["title"] == "T1" and t[1]["page"]["text"] == "body"
    assert t[1]["part"] == 2 and t[1]["url"] == "u1"
    row = records.row(0, typed, None)
    assert row.success and row.em == 1.0 and records.signals(typed)["terminated"] is True
    legacy_obs = (
        "\n<information>[Doc 1](u2) Two\nsnippet two\n\n[Doc 2](u3) Three\nsnippet three</information>\n"
    )
    legacy = {"trajectory": {"turns": [{"action": "<search> x </search>", "observation": legacy_obs}],
                             "info": {"steps": [{"kind": "search", "arg": "x", "hit_urls": ["u2", "u3"]}]}}}  # fmt: skip
    hits = records.turns(legacy)[0]["hits"]
    assert [(h["url"], h["title"], h["snippet"]) for h in hits] == [("u2", "Two", "snippet two"), ("u3", "Three", "snippet three")]  # fmt: skip
    bare = records.row(3, {}, None)  # nothing at all: a row, not a crash
    assert (
        bare.task_id == "" and bare.reward is None and records.turns({}) == [] and records.tokens({}) is None
    )
    no_trac = records.tokens({"tokens": ["a", "b"], "env_mask": [1, 0], "trac": None})
    assert no_trac["trac"] is None and no_trac["text"] == ["a", "b"]
    assert records.segments(["<s>", "x", "obs", "<a>"], [1, 1, 0, 1]) == [("<s>x", "obs"), ("<a>", "")]
