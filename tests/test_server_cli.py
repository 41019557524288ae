"""`searchgym serve` as users run it: a real process, the printed URL, ASearcher's discovery file, workers."""

from __future__ import annotations

import glob
import os
import random
import signal
import subprocess
import sys
import time

import psutil
import pytest
import requests

from searchgym.pipeline import build_world
from searchgym.world.build import WorldConfig


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(
        WorldConfig(seed=2, num_entities=120), tmp_path_factory.mktemp("w") / "w", progress=False
    )


class Serve:
    """`searchgym serve WORLD --port 0 ARGS` in a subprocess; `url` is read from its first line of output."""

    def __init__(self, *args: str):
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "searchgym.cli", "serve", *args, "--port", "0"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        self.line = self.proc.stdout.readline().strip()  # blocks until the server listens (or exits)
        assert self.line.startswith("serving http://"), (self.line, self.proc.stderr.read())
        self.url = self.line.split()[1]

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def wait_healthy(url: str) -> dict:
    deadline = time.monotonic() + 60  # workers load the index after the socket listens
    while True:
        try:
            return requests.get(url + "/health", timeout=10).json()
        except requests.ConnectionError:
            assert time.monotonic() < deadline, "server never answered"
            time.sleep(0.1)


def test_serve_binds_localhost_and_writes_asearcher_discovery_file(world, tmp_path):
    addr_dir = tmp_path / "rag_addrs"
    server = Serve(str(world.path), "--addr-file", str(addr_dir))
    try:
        assert server.url.startswith("http://127.0.0.1:")
        port = int(server.url.rsplit(":", 1)[1])
        # AsyncSearchBrowserClient.get_server_list: glob, readlines, random.choice, f"http://{addr}/retrieve"
        filenames = glob.glob(str(addr_dir) + "/Host*_IP*.txt")
        assert [os.path.basename(f) for f in filenames] == [f"Host127.0.0.1_IP{port}.txt"]
        server_list = []
        for filename in filenames:
            server_list.extend(open(filename).readlines())
        assert server_list == [f"127.0.0.1:{port}"]  # no newline, as ASearcher's own server writes it
        addr = random.choice(server_list)
        wait_healthy(server.url)
        r = requests.post(
            f"http://{addr}/retrieve", json={"queries": ["born"], "topk": 5, "return_scores": False}
        )
        r.raise_for_status()
        assert len([h["url"] for h in r.json()["result"][0]]) == 5
        assert os.listdir(addr_dir) == [f"Host127.0.0.1_IP{port}.txt"]  # no temp file left behind
    finally:
        code = server.stop()
    assert code == 0
    assert glob.glob(str(addr_dir) + "/Host*_IP*.txt") == []  # removed on shutdown


def test_serve_with_two_workers(world, tmp_path):
    server = Serve(str(world.path), "--workers", "2", "--addr-file", str(tmp_path))
    try:
        port = int(server.url.rsplit(":", 1)[1])
        assert os.listdir(tmp_path) == [f"Host127.0.0.1_IP{port}.txt"]
        health = wait_healthy(server.url)
        workers = [
            p for p in psutil.Process(server.proc.pid).children() if "spawn_main" in " ".join(p.cmdline())
        ]
        pids = {p.pid for p in workers}
        assert len(pids) == 2 and health["pid"] in pids and health["num_docs"] > 0
        r = requests.post(server.url + "/retrieve", json={"queries": ["born"] * 50, "topk": 3}, timeout=60)
        assert r.status_code == 200 and len(r.json()["result"]) == 50
    finally:
        code = server.stop()
    assert code == 0 and os.listdir(tmp_path) == []
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "searchgym.cli", "serve", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "70000"], "error: port 70000 is out of range 0..65535"),
        (["--port", "-1"], "error: port -1 is out of range 0..65535"),
        (["--max-queries", "0"], "error: max_queries must be positive"),
        (["--backend", "nope"], "error: unknown search backend 'nope'"),
    ],
)
def test_serve_refuses_bad_options_in_one_line(world, args, message):
    r = run_cli(str(world.path), *args)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().startswith(message) and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_serve_refuses_missing_world_and_busy_port(world, tmp_path):
    r = run_cli(str(tmp_path / "nowhere"))
    assert (
        r.returncode == 2 and "corpus.jsonl not found" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    )
    server = Serve(str(world.path))
    try:
        port = server.url.rsplit(":", 1)[1]
        r = run_cli(str(world.path), "--port", port)
        assert r.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in r.stderr
    finally:
        server.stop()


def test_serve_reads_a_config_file(world, tmp_path):
    (tmp_path / "serve.yaml").write_text("default_topk: 2\nmax_queries: 10\n")
    server = Serve(str(world.path), "--config", str(tmp_path / "serve.yaml"), "--max-topk", "7")
    try:
        limits = wait_healthy(server.url)["limits"]
        assert (limits["max_queries"], limits["max_topk"]) == (10, 7)
        r = requests.post(server.url + "/retrieve", json={"queries": ["born"]})
        assert len(r.json()["result"][0]) == 2
    finally:
        server.stop()
    r = run_cli(str(world.path), "--config", str(tmp_path / "missing.yaml"))
    assert r.returncode == 2 and "is not a file" in r.stderr
    (tmp_path / "bad.yaml").write_text("max_querys: 10\n")
    r = run_cli(str(world.path), "--config", str(tmp_path / "bad.yaml"))
    assert r.returncode == 2 and "unknown key(s) ['max_querys']" in r.stderr
