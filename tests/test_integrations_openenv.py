"""The OpenEnv server: a real uvicorn server on 127.0.0.1 over a real world + index + task set, driven by openenv's
own `GenericEnvClient` (WebSocket session)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("openenv")

from openenv import GenericEnvClient  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    import uvicorn

    from searchgym.index.build import build_index
    from searchgym.integrations.openenv_env import make_app
    from searchgym.pipeline import build_world
    from searchgym.tasks.config import TaskConfig
    from searchgym.tasks.store import save_tasks
    from searchgym.tasks.synth import build_tasks
    from searchgym.world.build import WorldConfig

    root = tmp_path_factory.mktemp("openenv")
    w = build_world(WorldConfig(seed=0, num_entities=120), root / "world", progress=False)
    build_index(root / "world", progress=False)
    tcfg = TaskConfig(max_hops=1, chain_per_hops=4, obfuscated=0, intersection=0, comparison=0)
    tasks = build_tasks(w, tcfg, progress=False)
    task_dir = save_tasks(tasks, root / "world", "t", tcfg.to_dict())

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            make_app(root / "world", task_dir, env={"max_turns": 3}, max_sessions=8),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the OpenEnv server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", tasks, task_dir
    server.should_exit = True
    thread.join(timeout=10)


def test_episode_over_openenv_client(served):
    url, tasks, _ = served
    task = tasks[0]
    with GenericEnvClient(base_url=url).sync() as client:
        r = client.reset(task_id=task.id)
        assert not r.done and r.observation["task_id"] == task.id
        assert task.question in r.observation["text"]
        assert [t["function"]["name"] for t in r.observation["tools"]] == ["search", "access", "answer"]
        state = client.state()
        assert state["task_id"] == task.id and state["step_count"] == 0 and state["episode_id"]

        r = client.step({"tool": "search", "args": {"query": task.question}})
        assert not r.done and r.reward == 0.0 and r.observation["error"] is None
        assert "searchgym.local/wiki/" in r.observation["text"]

        r = client.step({"tool": "access", "args": {"url": task.evidence[0].url}})
        assert not r.done and r.observation["error"] is None
        assert task.evidence[0].url in r.observation["text"]

        r = client.step({"tool": "answer", "args": {"answer": task.answer}})
        assert r.done and r.reward == 1.0
        assert r.observation["metadata"]["done_reason"] == "answer"
        state = client.state()
        assert state["step_count"] == 3 and state["done"] and state["task_id"] == task.id

        r = client.step({"tool": "search", "args": {"query": "more"}})  # after the end: no crash, still done
        assert r.done and r.observation["error"]

        r = client.reset(task_id=task.id)  # a new episode in the same session
        first_episode = state["episode_id"]
        assert client.state()["step_count"] == 0 and client.state()["episode_id"] != first_episode
        r = client.step({"tool": "browse", "args": {"url": "x"}})  # an invalid turn, shown as its error
        assert not r.done and r.reward == 0.0
        assert "browse" in r.observation["error"] and "browse" in r.observation["text"]
        assert client.state()["step_count"] == 1
        r = client.step({"tool": "answer", "args": {"answer": "certainly not the answer"}})
        assert r.done and r.reward == 0.0


def test_reset_by_seed_and_unknown_task(served):
    url, tasks, _ = served
    with GenericEnvClient(base_url=url).sync() as client:
        r = client.reset(seed=1)
        assert r.observation["task_id"] == tasks[1 % len(tasks)].id
        with pytest.raises(Exception, match="no task 'nope'"):
            client.reset(task_id="nope")


def test_two_sessions_and_turn_limit(served):
    url, tasks, _ = served
    with GenericEnvClient(base_url=url).sync() as a, GenericEnvClient(base_url=url).sync() as b:
        a.reset(task_id=tasks[0].id)
        b.reset(task_id=tasks[1].id)
        for turn in range(3):  # env max_turns=3: the third search ends a's episode without an answer
            r = a.step({"tool": "search", "args": {"query": tasks[0].question}})
            assert r.done == (turn == 2) and r.reward == 0.0
        assert r.observation["metadata"]["done_reason"] == "max_turns"
        assert b.state()["step_count"] == 0 and b.state()["task_id"] == tasks[1].id
        r = b.step({"tool": "answer", "args": {"answer": tasks[1].answer}})
        assert r.done and r.reward == 1.0 and a.state()["step_count"] == 3


def test_eight_sessions_searching_at_once_get_what_one_session_gets(served):
    """Sessions share one engine; searches from 8 sessions at the same moment return exactly what the same queries
    return one at a time (the engine's per-query caches are never touched by two threads at once)."""
    from concurrent.futures import ThreadPoolExecutor

    url, tasks, _ = served
    queries = [t.question for t in tasks] + [t.answer for t in tasks]

    def session(offset: int) -> list[str]:
        seen = []
        with GenericEnvClient(base_url=url).sync() as c:
            for i in range(len(queries)):
                if i % 2 == 0:  # max_turns=3 ends an episode after 3 searches: start a new one every 2
                    c.reset(task_id=tasks[0].id)
                r = c.step({"tool": "search", "args": {"query": queries[(i + offset) % len(queries)]}})
                seen.append(r.observation["text"])
        return seen

    alone = session(0)
    start = threading.Barrier(8)

    def together(offset: int) -> list[str]:
        start.wait()
        return session(offset)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(together, range(8)))
    for offset, seen in enumerate(results):
        assert seen == alone[offset:] + alone[:offset]


def test_command_serves_on_localhost(served):
    _, tasks, task_dir = served
    port = free_port()
    cmd = [sys.executable, "-m", "searchgym.integrations.openenv_env", "--world", str(task_dir.parent.parent)]
    proc = subprocess.Popen([*cmd, "--tasks", str(task_dir / "tasks.jsonl"), "--port", str(port)])
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, "the server command did not start"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        with GenericEnvClient(base_url=f"http://127.0.0.1:{port}").sync() as client:
            assert client.reset().observation["task_id"] == tasks[0].id  # no task_id or seed: file order
            r = client.step({"tool": "search", "args": {"query": tasks[0].question}})
            assert "searchgym.local/wiki/" in r.observation["text"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_command_names_a_bad_world(tmp_path):
    cmd = [
        sys.executable,
        "-m",
        "searchgym.integrations.openenv_env",
        "--world",
        str(tmp_path),
        "--tasks",
        "x",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("error: ") and str(tmp_path) in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
