"""LLM paraphrase against a real OpenAI-compatible HTTP server on 127.0.0.1, with the survival check."""

from __future__ import annotations

import dataclasses
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from searchgym.pipeline import build_world
from searchgym.tasks.config import ParaphraseConfig, TaskConfig
from searchgym.tasks.paraphrase import ParaphraseError, paraphrase_tasks
from searchgym.tasks.synth import build_tasks
from searchgym.world.build import WorldConfig


class Handler(BaseHTTPRequestHandler):
    mode = "keep"  # "keep": faithful rewrite; "drop": loses the names; "error": HTTP 500
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Handler.seen.append({"path": self.path, "body": body})
        if Handler.mode == "error":
            self.send_response(500)
            self.end_headers()
            return
        q = body["messages"][-1]["content"]
        text = f"Could you tell me: {q}" if Handler.mode == "keep" else "Which one is it?"
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": text}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        WorldConfig(seed=21, num_entities=300), tmp_path_factory.mktemp("w") / "w", progress=False
    )


CFG = TaskConfig(chain_per_hops=2, obfuscated=4, intersection=2, comparison=2)


def test_faithful_rewrites_are_kept(server, world):
    Handler.mode = "keep"
    cfg = dataclasses.replace(CFG, paraphrase=ParaphraseConfig(enabled=True, base_url=server, model="tiny"))
    plain = build_tasks(world, CFG, progress=False)
    tasks = build_tasks(world, cfg, progress=False)
    assert Handler.seen[-1]["path"] == "/v1/chat/completions" and Handler.seen[-1]["body"]["model"] == "tiny"
    for p, t in zip(plain, tasks, strict=True):
        assert t.id == p.id and t.answer == p.answer
        assert t.question == f"Could you tell me: {p.question}"
        assert t.meta["paraphrase"] == "kept" and t.meta["template_question"] == p.question


def test_rewrites_that_lose_names_are_rejected(server, world):
    Handler.mode = "drop"
    tasks = build_tasks(world, CFG, progress=False)
    out = paraphrase_tasks(tasks, world, ParaphraseConfig(enabled=True, base_url=server), progress=False)
    for before, after in zip(tasks, out, strict=True):
        assert after.question == before.question
        assert after.meta["paraphrase"].startswith("rejected: lost")


def test_endpoint_failure_is_a_clear_error(server, world):
    Handler.mode = "error"
    tasks = build_tasks(world, CFG, progress=False)[:1]
    cfg = ParaphraseConfig(enabled=True, base_url=server, max_retries=1)
    n = len(Handler.seen)
    with pytest.raises(
        ParaphraseError, match=r"/v1/chat/completions: failed after 2 attempt\(s\); last: HTTP 500"
    ):
        paraphrase_tasks(tasks, world, cfg)
    assert len(Handler.seen) == n + 2  # the first try and one retry, through searchgym.http.post_json
