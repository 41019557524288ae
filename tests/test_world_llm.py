"""LLM-written worlds through real OpenAI-compatible HTTP servers on 127.0.0.1.

A scripted writer (fast, each behaviour on purpose: exact, paraphrased, forgetful, stubborn, lying, failing) checks
the fact filter edge by edge; SmolLM2-135M-Instruct behind a chat/completions server checks the whole pipeline with
a real model, which loses facts the filter must catch.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
from searchgym.world.llm import JUDGE_SYSTEM, LLMConfig, LLMError
from searchgym.world.store import WORLD_FILES, World

SCHEMA = """
name: tiny
entity_types:
  - name: person
    name_style: person
    weight: 0.5
    lead: ["{name} (born {birth_year}) is a person."]
    attributes:
      - {name: birth_year, kind: year, low: 1900, high: 2000, noun: birth year,
         phrasings: ["{name} was born in the year {value}."], questions: ["In which year was {x} born?"]}
  - name: city
    name_style: city
    weight: 0.5
    lead: ["{name} is a city founded in {founded_year}."]
    attributes:
      - {name: founded_year, kind: year, low: 700, high: 1800, noun: founding year,
         phrasings: ["{name} was founded in {value}."]}
relations:
  - name: born_in
    source: person
    target: city
    cardinality: n-1
    label: Birthplace
    phrasings: ["{source} was born in {target}."]
    other_phrasings: ["{target} is the birthplace of {source}."]
    query: ["born in"]
    questions: ["Where was {x} born?"]
    descriptors: ["the birthplace of {x}"]
  - name: spouse_of
    source: person
    target: person
    cardinality: symmetric
    label: Spouse
    phrasings: ["{source} is married to {target}."]
    query: ["married to"]
    questions: ["Who is {x} married to?"]
    descriptors: ["the spouse of {x}"]
"""
_SENT = re.compile(r"(?<=[.!?])\s+")


class Writer(BaseHTTPRequestHandler):
    """Writes articles from the fact sheet. `style` per fact label: "exact" (the schema's own wording),
    "paraphrase" (needs the judge), "forget" (left out until the regeneration prompt asks for it), "never"
    (always left out), "lie" (also states `lie_target` as a second birthplace). `fail_after`: answer HTTP 500 to
    every request after that many."""

    style: dict[str, str] = {}
    lie_target = ""
    fail_after: int | None = None
    delay = 0.0  # seconds each request takes
    judge_quote = ""
    requests: list[dict] = []
    inflight = max_inflight = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        with Writer.lock:
            Writer.inflight += 1
            Writer.max_inflight = max(Writer.max_inflight, Writer.inflight)
        try:
            time.sleep(Writer.delay)
            self._answer()
        finally:
            with Writer.lock:
                Writer.inflight -= 1

    def _answer(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Writer.lock:
            failing = Writer.fail_after is not None and len(Writer.requests) >= Writer.fail_after
            if not failing:
                Writer.requests.append(body)
        if failing or self.path != "/v1/chat/completions":
            self._send(500, {"error": "down"})
            return
        system, user = body["messages"][0]["content"], body["messages"][-1]["content"]
        text = self._judge(user) if system == JUDGE_SYSTEM else self._write(user)
        reply = {"choices": [{"message": {"role": "assistant", "content": text}}]}
        reply["usage"] = {"prompt_tokens": len(user.split()), "completion_tokens": len(text.split())}
        self._send(200, reply)

    def _write(self, user: str) -> str:
        subject = user.split("Subject: ", 1)[1].split("\n", 1)[0]
        facts = user.split("Facts:\n", 1)[1].split("\n\n", 1)[0].split("\nRelated:", 1)[0]
        regenerating = "left out" in user
        out = [f"{subject} is a notable figure."]
        for line in facts.splitlines():
            label, _, value = line[2:].partition(": ")
            style = Writer.style.get(label, "exact")
            if style == "never" or (style == "forget" and not regenerating):
                continue
            if label == "Birthplace":
                if style == "paraphrase":
                    out.append(f"{subject} first saw the light of day in {value}.")
                elif style == "pronoun":  # the holder is not named in the fact's sentence
                    out.append(f"Born in {value}, this person moved away early.")
                elif style == "mislabel":  # the fact sheet's line of another relation, copied
                    out.append(f"{subject} (person) has Spouse: {value}.")
                else:
                    out.append(f"{subject} was born in {value}.")
                if style == "lie":
                    out.append(f"{subject} was born in {Writer.lie_target}.")
            elif label in ("Spouse", "Married to"):
                out.append(f"{subject} is married to {value}.")
        return " ".join(out)

    def _judge(self, user: str) -> str:
        article, fact = user.split("ARTICLE:\n", 1)[1].split("\n\nFACT: ", 1)
        if Writer.judge_quote:  # a careless judge: quotes the sentence containing this text
            return next((s for s in _SENT.split(article) if Writer.judge_quote in s), "NONE")
        names = set(re.findall(r"[A-Z][a-z]+", fact))
        best = max(_SENT.split(article), key=lambda s: len(names & set(re.findall(r"[A-Z][a-z]+", s))))
        return best if len(names & set(re.findall(r"[A-Z][a-z]+", best))) >= 3 else "NONE"

    def _send(self, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def writer() -> Iterator[str]:
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Writer)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture()
def scripted(writer, tmp_path) -> Iterator[tuple[str, Path]]:
    schema = tmp_path / "schema.yaml"
    schema.write_text(SCHEMA)
    Writer.style, Writer.fail_after, Writer.requests = {}, None, []
    Writer.delay, Writer.max_inflight, Writer.judge_quote = 0.0, 0, ""
    yield writer, schema


def _cfg(endpoint: str, schema: Path, cache: Path, n: int = 12, **llm) -> WorldConfig:
    return WorldConfig(
        seed=4,
        num_entities=n,
        schema=str(schema),
        writer="llm",
        llm=LLMConfig(endpoint=endpoint, model="scripted", cache_dir=str(cache), retries=0, **llm),
    )


def _files(path: Path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in (*WORLD_FILES, "manifest.json")}


def _edge_report(w: World) -> dict[int, tuple[str, bool, tuple[str, ...]]]:
    """edge id -> (relation, verified, failures)."""
    return {e.id: (e.relation, e.verified, e.failures) for e in w.edges}


def test_exact_statements_need_no_judge_and_every_edge_verifies(scripted, tmp_path):
    endpoint, schema = scripted
    w = build_world(_cfg(endpoint, schema, tmp_path / "cache"), tmp_path / "w", progress=False)
    llm = w.manifest["llm"]
    assert llm["calls"] == {"write": 12} and llm["regenerated"] == 0 and llm["facts_lost"] == 0
    assert {r: f["exact"] for r, f in llm["facts"].items()} == w.manifest["counts"]["relations"]
    assert all(e.verified for e in w.edges) and any(e.relation == "spouse_of" for e in w.edges)
    assert llm["tokens"]["prompt_tokens"] > 0 and llm["tokens"]["completion_tokens"] > 0
    for e in w.edges:  # the fact sentence is a sentence of the written text naming both ends
        text = w.doc_of(w.holder(e)).text
        fact = w.facts[e.id].sentence
        assert fact in text and w.entities[w.other_end(e)].name in fact
        assert not text.startswith(fact) or "Summary" in text
    for d in w.documents:  # the attribute box SearchGym appends
        assert "\n\nSummary\nType: " in d.text


def test_paraphrased_facts_are_found_by_the_judge(scripted, tmp_path):
    endpoint, schema = scripted
    Writer.style = {"Birthplace": "paraphrase"}
    w = build_world(_cfg(endpoint, schema, tmp_path / "cache"), tmp_path / "w", progress=False)
    facts = w.manifest["llm"]["facts"]["born_in"]
    assert facts["judge"] == facts["total"] > 0 and facts["exact"] == facts["lost"] == 0
    for e in w.edges:
        if e.relation == "born_in":
            assert e.verified and "first saw the light of day in" in w.facts[e.id].sentence
    judged = [r for r in Writer.requests if r["messages"][0]["content"] == JUDGE_SYSTEM]
    assert len(judged) == facts["total"]  # spouse facts were read exactly: no judge call for them


def test_a_quoted_sentence_stating_another_relation_is_not_accepted(scripted, tmp_path):
    """SmolLM2 copied "X (person) has Employer: Y" into an article and its judge quoted it for founded_by; a quote
    carrying another relation's label states that relation, so the fact stays lost."""
    endpoint, schema = scripted
    Writer.style = {"Birthplace": "mislabel"}
    w = build_world(_cfg(endpoint, schema, tmp_path / "cache", attempts=1), tmp_path / "w", progress=False)
    facts = w.manifest["llm"]["facts"]["born_in"]
    assert facts["lost"] == facts["total"] > 0 and facts["judge"] == 0
    judged = [r for r in Writer.requests if r["messages"][0]["content"] == JUDGE_SYSTEM]
    assert len(judged) == facts["total"]  # the judge was asked and quoted the copied line
    assert all(not e.verified for e in w.edges if e.relation == "born_in")


def test_a_quoted_sentence_must_name_both_ends(scripted, tmp_path):
    endpoint, schema = scripted
    Writer.style, Writer.judge_quote = {"Birthplace": "pronoun"}, "Born in"
    w = build_world(_cfg(endpoint, schema, tmp_path / "cache", attempts=1), tmp_path / "w", progress=False)
    facts = w.manifest["llm"]["facts"]["born_in"]
    assert facts["lost"] == facts["total"] > 0 and facts["judge"] == 0
    judged = [r for r in Writer.requests if r["messages"][0]["content"] == JUDGE_SYSTEM]
    assert len(judged) == facts["total"]  # asked, and it quoted "Born in X, this person moved away early."


def test_forgotten_facts_are_regenerated_and_stubborn_ones_dropped(scripted, tmp_path):
    endpoint, schema = scripted
    Writer.style = {"Birthplace": "forget"}
    w = build_world(_cfg(endpoint, schema, tmp_path / "c1", attempts=3), tmp_path / "w1", progress=False)
    born = w.manifest["counts"]["relations"]["born_in"]
    assert w.manifest["llm"]["regenerated"] == born and w.manifest["llm"]["facts_lost"] == 0
    assert all(e.verified for e in w.edges)
    retry = [
        r["messages"][-1]["content"] for r in Writer.requests if "left out" in r["messages"][-1]["content"]
    ]
    assert len(retry) == born and all("- Birthplace: " in m.split("left out", 1)[1] for m in retry)

    Writer.style, Writer.requests = {"Birthplace": "never"}, []
    w = build_world(_cfg(endpoint, schema, tmp_path / "c2", attempts=3), tmp_path / "w2", progress=False)
    report = _edge_report(w)
    assert w.manifest["llm"]["facts"]["born_in"]["lost"] == born
    assert all(not ok and "grounded" in fails for rel, ok, fails in report.values() if rel == "born_in")
    assert all(ok for rel, ok, _ in report.values() if rel == "spouse_of")
    writes = [r for r in Writer.requests if r["messages"][0]["content"] != JUDGE_SYSTEM]
    assert len(writes) == 12 + 2 * born  # every article with a birthplace was written 3 times, then dropped
    assert all(w.facts[e].sentence == "" for e, (rel, _, _) in report.items() if rel == "born_in")


def test_a_false_statement_contradicts_the_edge_and_is_recorded(scripted, tmp_path):
    endpoint, schema = scripted
    plain = build_world(_cfg(endpoint, schema, tmp_path / "c0"), tmp_path / "w0", progress=False)
    cities = sorted(e.name for e in plain.entities.values() if e.type == "city")
    liar = next(e for e in plain.edges if e.relation == "born_in")
    truth = plain.entities[liar.target].name
    Writer.lie_target = next(c for c in cities if c != truth)
    Writer.style = {"Birthplace": "lie"}
    w = build_world(_cfg(endpoint, schema, tmp_path / "c1"), tmp_path / "w1", progress=False)
    claims = [r for r in w.noise if r["kind"] == "claim"]
    assert claims and all(r["relation"] == "born_in" for r in claims)
    lied_about = {r["source"] for r in claims}
    for e in w.edges:
        if e.relation == "born_in":
            assert ("contradicted" in e.failures) == (e.source in lied_about)
            assert e.verified == (e.source not in lied_about)
    # the true birthplaces of those who said nothing false are still stated exactly
    assert all(w.facts[e.id].sentence for e in w.edges)


def test_a_killed_build_resumes_from_the_cache_and_rebuilds_byte_identically(scripted, tmp_path):
    endpoint, schema = scripted
    cache = tmp_path / "cache"
    Writer.style = {"Birthplace": "paraphrase"}
    Writer.fail_after = 7  # the endpoint goes down in the middle of the build
    with pytest.raises(LLMError, match="chat/completions.*rerun"):
        build_world(_cfg(endpoint, schema, cache, concurrency=1), tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()
    answered = [json.dumps(r, sort_keys=True) for r in Writer.requests]
    assert len(answered) == 7
    Writer.fail_after, Writer.requests = None, []
    first = build_world(_cfg(endpoint, schema, cache, concurrency=3), tmp_path / "w", progress=False)
    resumed = [json.dumps(r, sort_keys=True) for r in Writer.requests]
    assert resumed and not set(resumed) & set(answered)  # nothing asked twice
    Writer.requests = []
    again = build_world(_cfg(endpoint, schema, cache), tmp_path / "w2", progress=False)
    assert Writer.requests == []  # everything came from the cache
    assert _files(first.path) == _files(again.path)
    # an uninterrupted build in a fresh cache asks exactly what the two runs asked together
    full = build_world(_cfg(endpoint, schema, tmp_path / "fresh"), tmp_path / "w3", progress=False)
    assert sorted(json.dumps(r, sort_keys=True) for r in Writer.requests) == sorted(answered + resumed)
    assert _files(full.path) == _files(first.path)


def _cache_requests(cache: Path) -> set[str]:
    return {json.dumps(json.loads(p.read_text())["request"], sort_keys=True) for p in cache.glob("*/*.json")}


def test_a_build_killed_with_sigkill_resumes_without_asking_again(scripted, tmp_path):
    """`searchgym world build` in a subprocess, killed (SIGKILL) mid-way; the rerun asks for nothing the killed run
    had cached, prints facts lost and tokens per relation, and equals an uninterrupted build byte for byte."""
    endpoint, schema = scripted
    Writer.style, Writer.delay = {"Birthplace": "never"}, 0.03
    cache, out = tmp_path / "cache", tmp_path / "w"
    sets = [f"schema={schema}", "writer=llm", f"llm.endpoint={endpoint}", "llm.model=scripted"]
    sets += [f"llm.cache_dir={cache}", "llm.concurrency=2", "llm.attempts=2", "llm.retries=0"]
    cmd = [
        sys.executable,
        "-m",
        "searchgym.cli",
        "world",
        "build",
        str(out),
        "--entities",
        "40",
        "--seed",
        "4",
    ]
    cmd += [x for s in sets for x in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 120
    while len(Writer.requests) < 20 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    killed_asked = len(Writer.requests)
    cached = _cache_requests(cache)
    assert 20 - 2 <= len(cached) <= killed_asked < 60  # killed mid-way; at most the 2 in flight were lost

    Writer.requests = []
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    resumed = {json.dumps(r, sort_keys=True) for r in Writer.requests}
    assert resumed and not resumed & cached  # nothing the killed build had received was asked again
    manifest = json.loads((out / "manifest.json").read_text())
    llm = manifest["llm"]
    lost = llm["facts"]["born_in"]["lost"]
    assert lost == manifest["counts"]["relations"]["born_in"] > 0 and llm["facts"]["spouse_of"]["lost"] == 0
    text = " ".join(res.stdout.split())
    assert f"{lost:,} facts lost: born_in {lost}" in text
    assert (
        f"{llm['tokens']['prompt_tokens']:,} prompt + {llm['tokens']['completion_tokens']:,} completion"
        in text
    )
    row = next(ln for ln in res.stdout.splitlines() if ln.startswith("│ born_in "))
    cells = [c.strip() for c in row.strip("│ ").split("│")]
    assert cells == ["born_in", str(lost), "0", str(lost), str(lost), "0", "0"]  # all dropped as not grounded

    Writer.requests = []
    fresh = tmp_path / "fresh"
    cmd_fresh = [x.replace(str(cache), str(tmp_path / "c2")).replace(str(out), str(fresh)) for x in cmd]
    assert subprocess.run(cmd_fresh, capture_output=True, env=env, timeout=300).returncode == 0
    assert {json.dumps(r, sort_keys=True) for r in Writer.requests} == resumed | cached
    assert _files(fresh) == _files(out)


def test_requests_run_concurrently_and_concurrency_never_changes_the_bytes(scripted, tmp_path):
    endpoint, schema = scripted
    Writer.delay = 0.05
    one = build_world(_cfg(endpoint, schema, tmp_path / "c1", concurrency=1), tmp_path / "w1", progress=False)
    assert Writer.max_inflight == 1
    Writer.max_inflight = 0
    four = build_world(
        _cfg(endpoint, schema, tmp_path / "c4", concurrency=4), tmp_path / "w4", progress=False
    )
    assert Writer.max_inflight == 4
    assert _files(one.path) == _files(four.path)


def test_the_cache_is_keyed_by_model_prompt_and_facts(scripted, tmp_path):
    endpoint, schema = scripted
    cache = tmp_path / "cache"
    build_world(_cfg(endpoint, schema, cache), tmp_path / "w0", progress=False)
    first = len(Writer.requests)
    Writer.requests = []
    build_world(_cfg(endpoint, schema, cache), tmp_path / "w1", progress=False)
    assert Writer.requests == []
    other = _cfg(endpoint, schema, cache)
    other.llm.model = "another-model"
    build_world(other, tmp_path / "w2", progress=False)
    assert len(Writer.requests) == first and all(r["model"] == "another-model" for r in Writer.requests)
    Writer.requests = []  # one fact changed: only the fact sheets that show it are asked again
    schema.write_text(SCHEMA.replace("label: Spouse", "label: Married to"))
    w = build_world(_cfg(endpoint, schema, cache), tmp_path / "w3", progress=False)
    sheets = [r["messages"][-1]["content"] for r in Writer.requests]
    married = {e.source for e in w.edges if e.relation == "spouse_of"}
    assert len(sheets) == len(married) > 0 and all("- Married to: " in s for s in sheets)


def test_conflicts_are_refused_with_the_llm_writer(scripted, tmp_path):
    endpoint, schema = scripted
    cfg = _cfg(endpoint, schema, tmp_path / "cache")
    cfg.noise.conflict_rate = 0.1
    with pytest.raises(Exception, match="conflict_rate"):
        build_world(cfg, tmp_path / "w", progress=False)


# ---------------------------------------------------------------------------------- a real model: SmolLM2-135M


class SmolChat(BaseHTTPRequestHandler):
    """OpenAI chat/completions over SmolLM2-135M-Instruct with its chat template, greedy (one request at a time)."""

    model = tok = None
    lock = threading.Lock()
    served = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        import torch

        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            return
        with SmolChat.lock:
            prompt = SmolChat.tok.apply_chat_template(
                body["messages"], add_generation_prompt=True, tokenize=False
            )
            ids = SmolChat.tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                if body.get("seed") is not None:
                    torch.manual_seed(int(body["seed"]))
                out = SmolChat.model.generate(
                    ids,
                    max_new_tokens=int(body["max_tokens"]),
                    do_sample=float(body.get("temperature") or 0) > 0,
                    temperature=float(body.get("temperature") or 1.0) or 1.0,
                    pad_token_id=SmolChat.tok.eos_token_id,
                )
            new = out[0, ids.shape[1] :]
            text = SmolChat.tok.decode(new, skip_special_tokens=True)
            SmolChat.served += 1
        usage = {"prompt_tokens": int(ids.shape[1]), "completion_tokens": int(len(new))}
        raw = json.dumps(
            {"choices": [{"message": {"role": "assistant", "content": text}}], "usage": usage}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args) -> None:
        pass


@pytest.mark.slow
def test_smollm2_writes_a_world_and_the_filter_keeps_only_stated_facts(tmp_path):
    import torch

    from searchgym.models.load import load_model_and_tokenizer

    torch.set_num_threads(1)
    SmolChat.model, SmolChat.tok = load_model_and_tokenizer("smollm2")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), SmolChat)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{srv.server_address[1]}/v1"
        schema = tmp_path / "schema.yaml"
        schema.write_text(SCHEMA)
        cfg = _cfg(endpoint, schema, tmp_path / "cache", n=4, attempts=2, max_tokens=96, concurrency=1)
        cfg.llm.model = "smollm2-135m-instruct"
        w = build_world(cfg, tmp_path / "w", progress=False)
        served = SmolChat.served
        llm = w.manifest["llm"]
        assert llm["articles"] == 4 and llm["tokens"]["completion_tokens"] > 0
        assert llm["calls"]["write"] + llm["calls"].get("judge", 0) == served
        for rel, f in llm["facts"].items():
            assert f["exact"] + f["judge"] + f["lost"] == f["total"] == w.manifest["counts"]["relations"][rel]
        for e in w.edges:
            fact = w.facts[e.id].sentence
            if e.verified:  # a verified edge is stated in its holder's written text, naming the other end
                assert fact and fact in w.doc_of(w.holder(e)).text
                assert w.entities[w.other_end(e)].name in fact
            elif not fact:
                assert "grounded" in e.failures
        again = build_world(cfg, tmp_path / "w2", progress=False)
        assert SmolChat.served == served  # the cache answered everything
        assert _files(w.path) == _files(again.path)
    finally:
        srv.shutdown()
        srv.server_close()
