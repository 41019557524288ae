"""The environment over the HTTP search service gives exactly what it gives over the in-process engine."""

import socket
import threading
import time

import pytest
import uvicorn

from searchgym.env import BatchEnv, EnvConfig
from searchgym.index.build import engine_from_documents
from searchgym.index.client import HttpSearchEngine
from searchgym.index.server import create_app
from test_env import DOCS, TASK, URL, T


@pytest.fixture(scope="module")
def engines():
    local = engine_from_documents(DOCS)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(local), host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the search service did not start"
        time.sleep(0.02)
    remote = HttpSearchEngine(f"http://127.0.0.1:{port}")
    yield local, remote
    remote.close()
    server.should_exit = True
    thread.join(5)


def test_http_engine_gives_identical_episodes(engines):
    scripts = [
        [
            f"{T}<search>Varo Kestrel painter</search>",
            f"{T}<access>{URL}Varo_Kestrel#2</access>",
            f"{T}<answer>Marrowind</answer>",
        ],
        [
            f"{T}<search>harbour city</search>",
            f"{T}<access>{URL}Nowhere</access>",
            f"{T}<search>Orvane</search>",
        ],
    ]
    runs = []
    for engine in engines:
        batch = BatchEnv(engine, EnvConfig(page_chars=300, max_turns=3))
        out = [batch.reset([TASK, TASK])]
        for step in range(3):
            out.append(batch.step([s[step] if i in batch.active else None for i, s in enumerate(scripts)]))
        runs.append(out)
    assert runs[0] == runs[1]
    assert runs[1][1][0].info.hit_urls[0] == URL + "Varo_Kestrel"
