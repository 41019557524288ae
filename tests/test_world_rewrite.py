"""LLM rewrite through a real OpenAI-compatible HTTP server on 127.0.0.1 that drops one fact sentence."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
from searchgym.world.rewrite import RewriteConfig, RewriteError


class _Editor(BaseHTTPRequestHandler):
    """Returns the article with the first KEEP sentence removed; answers 500 to the first request."""

    calls = 0
    lock = threading.Lock()

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        with _Editor.lock:
            _Editor.calls += 1
            first = _Editor.calls == 1
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if first or self.path != "/v1/chat/completions":
            self.send_response(500)
            self.end_headers()
            return
        user = body["messages"][-1]["content"]
        article = user.split("ARTICLE:\n", 1)[1].split("\n\nKEEP:\n", 1)[0]
        keep = [line[2:] for line in user.split("\n\nKEEP:\n", 1)[1].splitlines() if line.startswith("- ")]
        if keep:
            article = article.replace(keep[0] + " ", "").replace(keep[0], "")
        reply = {"choices": [{"message": {"role": "assistant", "content": article}}], "model": body["model"]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[str]:
    _Editor.calls = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Editor)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def test_rewrite_dropped_fact_fails_grounding(server: str, tmp_path: Path):
    cfg = WorldConfig(
        seed=3, num_entities=300, rewrite=RewriteConfig(endpoint=server, model="tiny", retries=2)
    )
    w = build_world(cfg, tmp_path / "w", progress=False)
    first_fact: dict[str, int] = {}
    for f in sorted(w.facts.values(), key=lambda f: f.edge):
        first_fact.setdefault(f.doc, f.edge)
    dropped = set(first_fact.values())
    assert w.manifest["rewrite"]["facts_missing"] == len(dropped) > 0
    assert _Editor.calls == len(w.documents) + 1  # one failed request was retried
    for e in w.edges:
        fact = w.facts[e.id]
        assert (fact.sentence in w.doc_of(fact.doc).text) == (e.id not in dropped)
        assert ("grounded" in e.failures) == (e.id in dropped), e
    assert len(w.verified_edges()) <= len(w.edges) - len(dropped)


def test_unreachable_endpoint_is_a_clear_error(tmp_path: Path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = WorldConfig(
        seed=1,
        num_entities=200,
        verify=False,
        rewrite=RewriteConfig(endpoint=f"http://127.0.0.1:{port}/v1", retries=1, timeout_s=2),
    )
    with pytest.raises(
        RewriteError, match=rf"127\.0\.0\.1:{port}/v1/chat/completions failed after 2 attempts"
    ):
        build_world(cfg, tmp_path / "w", progress=False)
    assert not (tmp_path / "w").exists()
