"""The retrieval service, driven over real HTTP on a free local port, and the HTTP client engine."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn

from searchgym.index.build import engine_from_documents
from searchgym.index.client import HttpSearchEngine, SearchServiceError
from searchgym.index.server import ServerConfig, create_app
from searchgym.types import Document

DOCS = [
    Document(f"person/{i}", f"https://w/{name.replace(' ', '_')}", name, f"{name} {text}", f"person/{i}")
    for i, (name, text) in enumerate(
        [
            ("Ada Lovelace", "was born in London and wrote the first program."),
            ("Charles Babbage", "was born in London and designed the analytical engine."),
            ("Marie Curie", "was born in Warsaw and worked in Paris."),
            ("Alan Turing", "was born in Maida Vale and worked at Bletchley Park."),
        ]
    )
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Running:
    def __init__(self, app):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(5)


CFG = ServerConfig(max_topk=20, max_queries=8, max_query_chars=100, max_urls=4, max_body_bytes=5000)


@pytest.fixture(scope="module")
def engine():
    return engine_from_documents(DOCS, "bm25s")


@pytest.fixture(scope="module")
def server(engine):
    with _Running(create_app(engine, CFG)) as running:
        yield running


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=5) as client:
        yield client


def test_health(http):
    r = http.get("/health")
    assert r.status_code == 200 and r.json() == {"status": "ok", "backend": "bm25s", "num_docs": 4}


def test_retrieve_search_r1_contract(http, engine):
    r = http.post(
        "/retrieve", json={"queries": ["Marie Curie", "born London"], "topk": 2, "return_scores": True}
    )
    assert r.status_code == 200
    result = r.json()["result"]
    assert len(result) == 2 and len(result[0]) == 1 and len(result[1]) == 2
    top = result[0][0]
    assert top["document"] == {
        "id": "person/2",
        "contents": DOCS[2].contents,
        "url": DOCS[2].url,
        "title": "Marie Curie",
    }
    assert top["score"] == pytest.approx(engine.search("Marie Curie", 1)[0].score)
    # without scores: bare documents, as Search-R1's server answers
    r = http.post("/retrieve", json={"queries": ["Marie Curie"], "topk": 1})
    assert r.json() == {
        "result": [
            [{"id": "person/2", "contents": DOCS[2].contents, "url": DOCS[2].url, "title": "Marie Curie"}]
        ]
    }
    r = http.post("/retrieve", json={"queries": ["qqqzzz"], "topk": 3, "return_scores": True})
    assert r.json() == {"result": [[]]}


def test_access(http):
    r = http.post("/access", json={"urls": [DOCS[0].url, "https://w/Nobody"]})
    assert r.status_code == 200
    found, missing = r.json()["result"]
    assert found == {
        "url": DOCS[0].url,
        "found": True,
        "id": "person/0",
        "title": "Ada Lovelace",
        "contents": DOCS[0].contents,
    }
    assert missing == {"url": "https://w/Nobody", "found": False, "id": "", "title": "", "contents": ""}


BAD_RETRIEVE = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2]", 400, "must be a JSON object"),
    (b'{"topk": 3}', 422, 'missing field "queries"'),
    (b'{"queries": "London"}', 422, "must be a list of strings"),
    (b'{"queries": [1, 2]}', 422, "must be a list of strings"),
    (b'{"queries": []}', 422, "is empty"),
    (b'{"queries": ["London", "   "]}', 422, '"queries"[1] is empty'),
    (b'{"queries": ["' + b"x" * 101 + b'"]}', 422, "at most 100"),
    (b'{"queries": [' + b",".join([b'"a"'] * 9) + b"]}", 422, "at most 8 per request"),
    (b'{"queries": ["London"], "topk": 0}', 422, '"topk" must be an integer from 1 to 20'),
    (b'{"queries": ["London"], "topk": 21}', 422, '"topk" must be an integer from 1 to 20'),
    (b'{"queries": ["London"], "topk": "3"}', 422, '"topk"'),
    (b'{"queries": ["London"], "topk": true}', 422, '"topk"'),
    (b'{"queries": ["London"], "topk": 2.5}', 422, '"topk"'),
    (b'{"queries": ["London"], "return_scores": "yes"}', 422, '"return_scores" must be true or false'),
    (b'{"queries": ["London"], "top_k": 3}', 422, "unknown field(s) ['top_k']"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_RETRIEVE)
def test_malformed_retrieve(http, body, status, message):
    r = http.post("/retrieve", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert http.get("/health").status_code == 200  # the service keeps answering


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"urls": "https://w/x"}', "must be a list of strings"),
        (b'{"urls": []}', "is empty"),
        (b'{"urls": ["a", "b", "c", "d", "e"]}', "at most 4 per request"),
        (b'{"url": ["a"]}', "unknown field(s) ['url']"),
    ],
)
def test_malformed_access(http, body, message):
    r = http.post("/access", content=body)
    assert r.status_code == 422 and message in r.json()["detail"]


def test_oversized_bodies(http):
    big = b'{"queries": ["' + b"x" * 6000 + b'"]}'
    r = http.post("/retrieve", content=big)
    assert r.status_code == 413 and "larger than 5000 bytes" in r.json()["detail"]

    def chunks():  # no Content-Length: the limit is enforced while streaming
        for _ in range(10):
            yield b"x" * 1000

    r = http.post("/retrieve", content=chunks())
    assert r.status_code == 413
    assert http.post("/retrieve", json={"queries": ["London"]}).status_code == 200


def test_wrong_method_and_path(http):
    assert http.get("/retrieve").status_code == 405
    assert http.post("/nope", json={}).status_code == 404


def test_concurrent_requests(http, server):
    errors = []

    def worker():
        with httpx.Client(base_url=server.url, timeout=5) as c:
            for i in range(20):
                r = c.post("/retrieve", json={"queries": [DOCS[i % 4].title], "topk": 1})
                if r.status_code != 200 or r.json()["result"][0][0]["title"] != DOCS[i % 4].title:
                    errors.append(r.text)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_http_engine_matches_local(server, engine):
    remote = HttpSearchEngine(server.url, timeout=5, retries=0)
    queries = ["Ada Lovelace", "born London", "Warsaw", "qqqzzz", "Babage"]
    for got, want in zip(remote.batch_search(queries, 3), engine.batch_search(queries, 3), strict=True):
        assert [(h.doc_id, h.url, h.title, h.text) for h in got] == [
            (h.doc_id, h.url, h.title, h.text) for h in want
        ]
        assert [h.score for h in got] == pytest.approx([h.score for h in want])
    assert remote.search("Alan Turing", 1)[0].doc_id == "person/3"
    doc = remote.access(DOCS[1].url)
    assert (doc.id, doc.title, doc.text) == ("person/1", DOCS[1].title, DOCS[1].text)
    assert remote.access("https://w/Nobody") is None
    with pytest.raises(SearchServiceError, match="refused the request .422.*topk"):
        remote.search("London", 50)
    remote.max_batch = 3  # batches larger than the server allows are split
    assert len(remote.batch_search(["London"] * 7, 1)) == 7
    remote.close()


def test_http_engine_retries_then_fails_clearly():
    client = HttpSearchEngine(f"http://127.0.0.1:{_free_port()}", timeout=1, retries=2, backoff=0.05)
    start = time.monotonic()
    with pytest.raises(SearchServiceError, match="failed after 3 attempts"):
        client.search("London")
    assert time.monotonic() - start >= 0.05 + 0.1  # slept backoff * 2**attempt between attempts


class _FlakyEngine:
    """A real engine whose first calls fail, to see the client retry 5xx answers."""

    def __init__(self, engine, failures):
        self.engine, self.failures, self.name, self.store = engine, failures, "flaky", engine.store

    def batch_search(self, queries, k):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("transient failure")
        return self.engine.batch_search(queries, k)

    def access(self, url):
        return self.engine.access(url)


def test_http_engine_retries_5xx(engine):
    flaky = _FlakyEngine(engine, failures=2)
    with _Running(create_app(flaky, CFG)) as running:
        client = HttpSearchEngine(running.url, timeout=5, retries=3, backoff=0.01)
        assert client.search("Marie Curie", 1)[0].doc_id == "person/2"
        assert flaky.failures == 0
        flaky.failures = 5
        with pytest.raises(SearchServiceError, match="HTTP 500"):
            HttpSearchEngine(running.url, retries=1, backoff=0.01).search("London")
