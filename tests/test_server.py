"""The retrieval service against the requests Search-R1, ASearcher and verl's search tool really send.

Each client is reproduced from its code (request body, headers, status handling, the fields it reads):
Search-R1 @a14dc3a `search_r1/llm_agent/generation.py` (_batch_search, _passages2string), ASearcher @813e804
`AReaL/ASearcher/utils/search_utils.py` (AsyncSearchBrowserClient), verl `verl/tools/utils/search_r1_like_utils.py`
(call_search_api, _passages2string). The server is a real uvicorn on 127.0.0.1 over a real world's index.
"""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import requests

from searchgym.index.build import load_engine
from searchgym.index.client import HttpSearchEngine, SearchServiceError
from searchgym.index.server import (
    DocumentJSON,
    ServerConfig,
    StoppingServer,
    bind,
    create_app,
    query_text,
    uvicorn_config,
)
from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig


class Running:
    """A real uvicorn server, configured as `searchgym serve` configures it, on a free local port."""

    def __init__(self, app, cfg: ServerConfig | None = None):
        self.sock = bind("127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = StoppingServer(uvicorn_config(app, cfg or ServerConfig(), "error"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20  # safety stop only
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        WorldConfig(seed=0, num_entities=200), tmp_path_factory.mktemp("w") / "w", progress=False
    )


@pytest.fixture(scope="module")
def engine(world):
    return load_engine(world.path)


@pytest.fixture(scope="module")
def server(engine):
    with Running(create_app(engine)) as running:
        yield running


@pytest.fixture(scope="module")
def names(world):
    return [e.name for e in world.entities.values()]


# ---- Search-R1 -------------------------------------------------------------------------------------------
def search_r1_batch_search(url: str, queries: list[str], topk: int = 3) -> list[str]:
    """LLMGenerationManager.batch_search: no timeout, no status check, `['result']`, then _passages2string."""
    payload = {"queries": queries, "topk": topk, "return_scores": True}
    results = requests.post(url + "/retrieve", json=payload).json()["result"]
    out = []
    for result in results:
        ref = ""
        for idx, doc_item in enumerate(result):
            content = doc_item["document"]["contents"]
            title, text = content.split("\n")[0], "\n".join(content.split("\n")[1:])
            ref += f"Doc {idx + 1}(Title: {title}) {text}\n"
        out.append(ref)
    return out


def local_passages(engine, queries: list[str], k: int = 3) -> list[str]:
    return [
        "".join(f"Doc {i + 1}(Title: {h.title}) {h.text}\n" for i, h in enumerate(hits))
        for hits in engine.batch_search(queries, k)
    ]


def test_search_r1_turn_matches_in_process(server, engine, names):
    queries = [f"{n} born" for n in names[:20]] + names[20:40]
    assert search_r1_batch_search(server.url, queries) == local_passages(engine, queries)


def test_search_r1_turn_where_no_sample_searches(server):
    # execute_predictions posts even when no sample searched, then asserts len(results) == 0
    assert search_r1_batch_search(server.url, []) == []
    r = requests.post(server.url + "/retrieve", json={"queries": [], "topk": 3, "return_scores": True})
    assert r.status_code == 200 and r.json() == {"result": []}


def test_search_r1_blank_query_among_others(server, engine, names):
    queries = [names[0], "", "   ", names[1]]  # <search></search> and <search>   </search> give ""
    got = search_r1_batch_search(server.url, queries)
    assert got == [local_passages(engine, [names[0]])[0], "", "", local_passages(engine, [names[1]])[0]]


def test_search_r1_default_grpo_batch_of_2560(server, engine, names):
    # train_grpo.sh: train_batch_size 512 x n_agent 5, repeated interleaved, topk 3
    prompts = [f"{names[i % len(names)]} {('born', 'studied', 'works')[i % 3]}" for i in range(512)]
    queries = [q for q in prompts for _ in range(5)]
    got = search_r1_batch_search(server.url, queries)
    assert len(got) == 2560
    want = dict(zip(prompts, local_passages(engine, prompts), strict=True))
    assert got == [want[q] for q in queries]


def test_over_long_query_is_cut_not_refused(server, engine, names):
    cfg = ServerConfig()
    long_query = " ".join([names[3]] + ["about"] * 3000)  # > max_query_chars and > max_query_words
    cut = query_text(long_query, cfg)
    assert len(cut.split()) == cfg.max_query_words and cut.startswith(names[3])
    assert search_r1_batch_search(server.url, [long_query, names[4]]) == local_passages(
        engine, [cut, names[4]]
    )


@pytest.mark.parametrize("topk", [None, 0, "missing"])
def test_topk_null_missing_or_zero_is_the_default(server, names, topk):
    body = {"queries": [names[5] + " born"], "return_scores": True, "some_new_field": {"x": 1}}
    if topk != "missing":
        body["topk"] = topk
    r = requests.post(server.url + "/retrieve", json=body)
    assert r.status_code == 200 and len(r.json()["result"][0]) == ServerConfig().default_topk == 3


def test_topk_as_pydantic_takes_it_and_large_topk_is_lowered(server, engine, names):
    r = requests.post(
        server.url + "/retrieve", json={"queries": [names[6]], "topk": "2", "return_scores": True}
    )
    assert r.status_code == 200 and len(r.json()["result"][0]) == 2
    r = requests.post(server.url + "/retrieve", json={"queries": ["born in"], "topk": 10**40})
    assert r.status_code == 200 and r.headers["x-searchgym-topk"] == "100"
    assert len(r.json()["result"][0]) == len(engine.search("born in", 100))


# ---- response shapes -------------------------------------------------------------------------------------
def test_return_scores_shapes(server, engine, names):
    q = names[7]
    hits = engine.search(q, 3)
    docs = [{"id": h.doc_id, "contents": h.contents, "url": h.url, "title": h.title} for h in hits]
    with_scores = requests.post(
        server.url + "/retrieve", json={"queries": [q], "topk": 3, "return_scores": True}
    )
    (items,) = with_scores.json()["result"]
    assert [set(i) for i in items] == [{"document", "score"}] * len(hits)
    assert [i["document"] for i in items] == docs
    assert [i["score"] for i in items] == pytest.approx([h.score for h in hits])
    bare = requests.post(server.url + "/retrieve", json={"queries": [q], "topk": 3, "return_scores": False})
    assert bare.json() == {"result": [docs]}  # as ASearcher's server answers return_scores false


# ---- ASearcher -------------------------------------------------------------------------------------------
def asearcher_query(addr: str, query: str, topk: int = 5) -> dict:
    """AsyncSearchBrowserClient.query_async (one query per request), synchronously: raise_for_status, then
    `contents` and `url` of each flat hit."""
    req_meta = {"queries": [query], "topk": topk, "return_scores": False}
    response = requests.post(f"http://{addr}/retrieve", json=req_meta, timeout=120)
    response.raise_for_status()
    res = response.json()
    return [
        dict(documents=[r["contents"] for r in result], urls=[r["url"] for r in result])
        for result in res["result"]
    ][0]


def asearcher_access(addr: str, url: str) -> str:
    response = requests.post(f"http://{addr}/access", json={"urls": [url]}, timeout=120)
    response.raise_for_status()
    return [result["contents"] if result is not None else "" for result in response.json()["result"]][0]


def test_asearcher_search_and_access(server, engine, names):
    addr = server.url.removeprefix("http://")
    got = asearcher_query(addr, names[8])
    hits = engine.search(names[8], 5)
    assert got == {"documents": [h.contents for h in hits], "urls": [h.url for h in hits]}
    assert asearcher_query(addr, "") == {
        "documents": [],
        "urls": [],
    }  # <search></search>: 200, not a 4xx retry loop
    assert asearcher_access(addr, hits[0].url) == hits[0].contents
    assert asearcher_access(addr, "https://nowhere.example/x") == ""
    r = requests.post(server.url + "/access", json={"urls": []})
    assert r.status_code == 200 and r.json() == {"result": []}


# ---- verl search tool ------------------------------------------------------------------------------------
def verl_search(url: str, query_list: list, topk: int = 3) -> tuple[str | None, str | None]:
    """call_search_api + perform_single_search_batch: 5xx retried, any other error fails the whole call."""
    payload = {"queries": query_list, "topk": topk, "return_scores": True}
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    response = requests.post(url + "/retrieve", headers=headers, json=payload, timeout=30)
    if response.status_code in (500, 502, 503, 504):
        return None, f"Server Error ({response.status_code})"
    try:
        response.raise_for_status()
    except requests.RequestException as e:
        return None, str(e)
    pretty = []
    for retrieval in response.json().get("result", []):
        ref = ""
        for idx, doc_item in enumerate(retrieval):
            content = doc_item["document"]["contents"]
            title, text = content.split("\n")[0], "\n".join(content.split("\n")[1:])
            ref += f"Doc {idx + 1} (Title: {title})\n{text}\n\n"
        pretty.append(ref.strip())
    return "\n---\n".join(pretty), None


def test_verl_one_bad_query_does_not_fail_the_call(server, engine, names):
    # query_list comes from the model's JSON tool arguments: anything JSON can hold
    query_list = [names[9], "", None, 1984, ["nested"], "\ud800" + names[10], "x" * 50_000, names[11]]
    text, error = verl_search(server.url, query_list)
    assert error is None
    parts = text.split("\n---\n")
    assert len(parts) == len(query_list)

    def local(q):
        return "\n\n".join(
            f"Doc {i + 1} (Title: {h.title})\n{h.text}" for i, h in enumerate(engine.search(q, 3))
        ).strip()

    assert parts[0] == local(names[9]) and parts[-1] == local(names[11])
    assert parts[1] == parts[2] == parts[4] == ""
    assert parts[3] == local("1984")
    assert parts[5] == local("?" + names[10])  # the lone surrogate is replaced, the query still answered


# ---- malformed requests: 4xx naming the problem, and the server keeps answering ------------------------
MALFORMED = [
    ("/retrieve", b"{not json", 400, "not valid JSON"),
    ("/retrieve", b"\xff\xfe", 400, "not valid JSON"),
    ("/retrieve", b"[1, 2]", 400, "must be a JSON object"),
    ("/retrieve", b"[" * 50_000 + b"]" * 50_000, 400, "nested too deeply"),
    ("/retrieve", b'{"queries": ["a"], "topk": ' + b"9" * 5000 + b"}", 400, "4300 digits"),
    ("/retrieve", b'{"topk": 3}', 422, 'missing field "queries"'),
    ("/retrieve", b'{"queries": null}', 422, 'missing field "queries"'),
    ("/retrieve", b'{"queries": "London"}', 422, '"queries" must be a list of strings'),
    ("/retrieve", b'{"queries": ["a"], "topk": "three"}', 422, '"topk" must be a positive integer'),
    ("/retrieve", b'{"queries": ["a"], "topk": true}', 422, '"topk" must be a positive integer'),
    ("/retrieve", b'{"queries": ["a"], "topk": -1}', 422, '"topk" must be a positive integer, got -1'),
    ("/retrieve", b'{"queries": ["a"], "topk": 2.5}', 422, '"topk" must be a positive integer'),
    (
        "/retrieve",
        b'{"queries": ["a"], "return_scores": "maybe"}',
        422,
        '"return_scores" must be true or false',
    ),
    ("/access", b'{"urls": ["https://w/\\ud800"]}', 422, '"urls"[0] is not valid Unicode'),
    ("/access", b'{"urls": [1]}', 422, '"urls"[0] must be a string'),
    ("/access", b'{"urls": "https://w/x"}', 422, '"urls" must be a list of strings'),
    ("/access", b"{}", 422, 'missing field "urls"'),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), MALFORMED)
def test_malformed(server, path, body, status, message):
    r = requests.post(server.url + path, data=body, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert requests.get(server.url + "/health", timeout=30).status_code == 200


def test_wrong_method_and_path(server):
    assert requests.get(server.url + "/retrieve").status_code == 405
    assert requests.post(server.url + "/nope", json={}).status_code == 404


def test_health(server, engine):
    r = requests.get(server.url + "/health").json()
    assert {k: r[k] for k in ("status", "backend", "num_docs", "in_flight")} == {
        "status": "ok",
        "backend": "bm25s",
        "num_docs": len(engine),
        "in_flight": 0,
    }
    assert r["limits"] == ServerConfig().limits() and r["pid"] == os.getpid()


# ---- per-request limits ----------------------------------------------------------------------------------
SMALL = ServerConfig(
    max_topk=20,
    max_queries=8,
    max_results=16,
    max_urls=4,
    max_url_chars=100,
    max_body_bytes=5000,
    chunk_queries=3,
)


@pytest.fixture(scope="module")
def small(engine):
    with Running(create_app(engine, SMALL), SMALL) as running:
        yield running


def test_too_many_queries_or_urls_is_413_naming_the_limit(small, names):
    r = requests.post(small.url + "/retrieve", json={"queries": names[:9]})
    assert r.status_code == 413 and "at most 8 per request (--max-queries)" in r.json()["detail"]
    r = requests.post(small.url + "/access", json={"urls": ["a"] * 5})
    assert r.status_code == 413 and "at most 4 per request (--max-urls)" in r.json()["detail"]


def test_topk_lowered_to_fit_max_results(small, engine, names):
    queries = [f"{n} born" for n in names[:8]]  # 8 queries x topk 10 > 16 results: topk becomes 2
    r = requests.post(small.url + "/retrieve", json={"queries": queries, "topk": 10, "return_scores": True})
    assert r.status_code == 200 and r.headers["x-searchgym-topk"] == "2"
    want = engine.batch_search(queries, 2)
    assert [[i["document"]["id"] for i in hits] for hits in r.json()["result"]] == [
        [h.doc_id for h in hits] for hits in want
    ]


def test_long_url_is_not_found(small):
    r = requests.post(small.url + "/access", json={"urls": ["https://w/" + "x" * 200]})
    assert r.status_code == 200 and r.json()["result"][0]["found"] is False


def test_oversized_bodies(small):
    r = requests.post(small.url + "/retrieve", data=b'{"queries": ["' + b"x" * 6000 + b'"]}')
    assert (
        r.status_code == 413
        and "larger than 5000 bytes (max_body_bytes, --max-body-bytes)" in r.json()["detail"]
    )

    def chunks():  # no Content-Length: the limit holds while streaming
        for _ in range(10):
            yield b"x" * 1000

    r = requests.post(small.url + "/retrieve", data=chunks())
    assert r.status_code == 413
    assert requests.post(small.url + "/retrieve", json={"queries": ["born"]}).status_code == 200


def test_reply_larger_than_the_limit_is_413(engine, names):
    cfg = ServerConfig(max_reply_bytes=2000, chunk_queries=2)
    with Running(create_app(engine, cfg), cfg) as running:
        r = requests.post(running.url + "/retrieve", json={"queries": names[:10], "topk": 5})
        assert r.status_code == 413 and "reply larger than 2000 bytes" in r.json()["detail"]
        assert "--max-reply-bytes" in r.json()["detail"]
        assert requests.post(running.url + "/retrieve", json={"queries": ["qqqzzz"]}).json() == {
            "result": [[]]
        }


def test_document_cache_is_bounded(engine, names):
    document = DocumentJSON(cap_bytes=3000)
    hits = [h for hits in engine.batch_search(names[:50], 5) for h in hits]
    for h in hits:
        encoded = document(h)
        assert json.loads(encoded)["contents"] == h.contents
        assert document.size == sum(map(len, document.cache.values())) <= 3000


def test_config_refuses_unusable_limits():
    with pytest.raises(ValueError, match="port 70000 is out of range"):
        ServerConfig(port=70000).check()
    with pytest.raises(ValueError, match="max_results 4 must be at least max_queries 8"):
        ServerConfig(max_queries=8, max_results=4).check()
    with pytest.raises(ValueError, match="chunk_queries must be positive"):
        ServerConfig(chunk_queries=0).check()


# ---- HttpSearchEngine ------------------------------------------------------------------------------------
def test_http_engine_matches_local(server, engine, names):
    remote = HttpSearchEngine(server.url, timeout=30, retries=0)
    queries = names[:30] + [f"{n} studied" for n in names[:30]] + ["qqqzzz", ""]
    for got, want in zip(remote.batch_search(queries, 3), engine.batch_search(queries, 3), strict=True):
        assert [(h.doc_id, h.url, h.title, h.text) for h in got] == [
            (h.doc_id, h.url, h.title, h.text) for h in want
        ]
        assert [h.score for h in got] == pytest.approx([h.score for h in want])
    hit = engine.search(names[0], 1)[0]
    doc = remote.access(hit.url)
    assert (doc.id, doc.url, doc.title, doc.text) == (hit.doc_id, hit.url, hit.title, hit.text)
    assert remote.access("https://nowhere.example/x") is None
    assert len(remote.search("born in", 500)) == len(engine.search("born in", 100))  # lowered to max_topk
    remote.close()


def test_http_engine_chunks_to_the_server_limits(small, engine, names):
    remote = HttpSearchEngine(small.url, timeout=30, retries=0)
    assert remote.limits()["max_queries"] == 8
    assert remote.batch_size(3) == 5  # max_results 16 // topk 3
    assert remote.batch_size(1) == 8
    queries = [f"{n} born" for n in names[:23]]
    got = remote.batch_search(queries, 3)  # 5 requests, none refused
    assert [[h.doc_id for h in hits] for hits in got] == [
        [h.doc_id for h in hits] for hits in engine.batch_search(queries, 3)
    ]
    with pytest.raises(SearchServiceError, match=r"refused the request \(422\).*topk"):
        remote._post("/retrieve", {"queries": ["a"], "topk": "many"})
    remote.close()


def test_http_engine_retries_then_fails_clearly():
    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there any more
    client = HttpSearchEngine(f"http://127.0.0.1:{port}", timeout=5, retries=2, backoff=0.01)
    with pytest.raises(SearchServiceError, match="failed after 3 attempt"):
        client.search("London")


class FlakyEngine:
    """The real engine, whose first batches fail: the server answers 500 with a JSON detail."""

    def __init__(self, engine, failures):
        self.engine, self.failures, self.name = engine, failures, "flaky"

    def __len__(self):
        return len(self.engine)

    def batch_search(self, queries, k):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("transient failure")
        return self.engine.batch_search(queries, k)

    def access(self, url):
        return self.engine.access(url)


def test_http_engine_retries_5xx(engine, names):
    flaky = FlakyEngine(engine, failures=2)
    with Running(create_app(flaky)) as running:
        r = requests.post(running.url + "/retrieve", json={"queries": [names[0]]})
        assert r.status_code == 500 and "RuntimeError: transient failure" in json.loads(r.text)["detail"]
        client = HttpSearchEngine(running.url, timeout=30, retries=3, backoff=0.01)
        assert client.search(names[0], 1)[0].doc_id == engine.search(names[0], 1)[0].doc_id
        assert flaky.failures == 0
        flaky.failures = 5
        with pytest.raises(SearchServiceError, match="HTTP 500"):
            HttpSearchEngine(running.url, retries=1, backoff=0.01).search(names[0])
