"""One request never stalls the others: search runs off the event loop in chunks, slow clients time out.

No timing is asserted: /health reports how many requests are being searched (`in_flight`), so the tests check
that answers came back while a heavy request was still being worked on. Deadlines here are safety stops.
"""

from __future__ import annotations

import random
import socket
import string
import threading
import time

import pytest
import requests

from searchgym.index.build import load_engine
from searchgym.index.server import ServerConfig, create_app
from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig
from test_server import Running


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    world = build_world(
        WorldConfig(seed=1, num_entities=200), tmp_path_factory.mktemp("w") / "w", progress=False
    )
    return load_engine(world.path)


def rare_queries(n: int, words: int = 32) -> list[str]:
    """Words the index does not know: each goes through typo correction, the engine's slowest path."""
    rng = random.Random(0)
    return [
        " ".join("".join(rng.choices(string.ascii_lowercase, k=8)) for _ in range(words)) for _ in range(n)
    ]


def health(url: str) -> dict:
    return requests.get(url + "/health", timeout=30).json()


def test_health_and_small_requests_answer_during_a_heavy_request(engine):
    name = engine.search("born", 1)[0].title
    with Running(create_app(engine)) as server:
        heavy = rare_queries(400)
        done = {}

        def post_heavy():
            done["reply"] = requests.post(
                server.url + "/retrieve", json={"queries": heavy, "topk": 3}, timeout=600
            )

        thread = threading.Thread(target=post_heavy)
        thread.start()
        deadline = time.monotonic() + 60
        while health(server.url)["in_flight"] == 0:
            assert thread.is_alive() and time.monotonic() < deadline, "the heavy request never started"
            time.sleep(0.005)
        probes = [health(server.url) for _ in range(5)]
        small = requests.post(server.url + "/retrieve", json={"queries": [name], "topk": 1}, timeout=30)
        after = health(server.url)
        thread.join(600)
    assert all(p["status"] == "ok" and p["in_flight"] >= 1 for p in probes)
    assert small.status_code == 200 and small.json()["result"][0][0]["title"] == name
    assert after["in_flight"] >= 1  # the small request finished while the heavy one was still being searched
    assert done["reply"].status_code == 200 and len(done["reply"].json()["result"]) == 400


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


@pytest.fixture(scope="module")
def impatient(engine):
    cfg = ServerConfig(body_timeout=1.0, header_timeout=1.0)
    with Running(create_app(engine, cfg), cfg) as server:
        yield server


def trickle(sock: socket.socket, head: bytes, piece: bytes) -> threading.Thread:
    """Send `head`, then `piece` every 0.2 s until the server hangs up."""

    def run():
        try:
            sock.sendall(head)
            for _ in range(300):
                time.sleep(0.2)
                sock.sendall(piece)
        except OSError:
            pass

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_client_trickling_its_body_gets_408_and_is_disconnected(impatient):
    port = int(impatient.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        head = b"POST /retrieve HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 10000\r\n\r\n"
        thread = trickle(sock, head + b'{"queries": [', b'"a",')
        assert health(impatient.url)["status"] == "ok"  # others are answered meanwhile
        reply = read_until_closed(sock)
    thread.join(60)
    assert reply.startswith(b"HTTP/1.1 408") and b"not received within 1 s (--body-timeout)" in reply


def test_client_trickling_its_headers_gets_408_and_is_disconnected(impatient):
    port = int(impatient.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        thread = trickle(sock, b"POST /retrieve HTTP/1.1\r\n", b"x-pad: 1\r\n")
        assert health(impatient.url)["status"] == "ok"
        reply = read_until_closed(sock)
    thread.join(60)
    assert reply.startswith(b"HTTP/1.1 408")


def test_silent_connection_is_closed(impatient):
    port = int(impatient.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        assert read_until_closed(sock).startswith(b"HTTP/1.1 408")


def test_keep_alive_connection_serves_many_requests(impatient):
    # the header deadline restarts for every request on a kept-alive connection
    with requests.Session() as session:
        for _ in range(3):
            assert session.post(impatient.url + "/retrieve", json={"queries": ["born"]}).status_code == 200
            time.sleep(0.6)  # idle less than the keep-alive timeout, but > half the header deadline
        assert session.get(impatient.url + "/health").json()["status"] == "ok"
