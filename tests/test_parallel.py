"""fork_map's workers end even when the parent has a SIGTERM handler that does not exit (our temp-file cleanup,
Ray's): before, Pool.terminate() left such workers alive and the join hung."""

import subprocess
import sys

CODE = """
import signal
from searchgym.parallel import fork_map

signal.signal(signal.SIGTERM, lambda *a: None)  # a handler that returns, inherited by forked workers
assert list(fork_map(abs, [-1, -2, -3, -4], 2)) == [1, 2, 3, 4]
for x in fork_map(abs, [-1, -2, -3, -4], 2):
    break  # stopped early: the pool is terminated with tasks pending
print("done")
"""


def test_fork_map_workers_end_under_an_inherited_sigterm_handler():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr


SLOW_START = """
import os, signal, sys, time
import searchgym.parallel as parallel

marker = sys.argv[1]
parent = os.getpid()

def swallow(signum, frame):  # inherited by the workers: records a SIGTERM that reached a worker's Python code
    if os.getpid() != parent:
        open(marker, "a").write(f"{os.getpid()}\\n")

signal.signal(signal.SIGTERM, swallow)
real = parallel._default_sigterm

def slow_start():  # the first worker starts at once, the others are still starting when the pool ends
    with open(marker + ".started", "a+") as f:
        f.write("x")
        f.seek(0)
        first = len(f.read()) == 1
    time.sleep(0.05 if first else 2.0)
    real()

parallel._default_sigterm = slow_start
assert list(parallel.fork_map(abs, [-1, -2, -3], 2)) == [1, 2, 3]  # the first worker takes every item
os.remove(marker + ".started")
for x in parallel.fork_map(abs, [-1, -2, -3, -4], 2):
    break  # terminated while the second worker is still starting
print("done")
"""


def test_fork_map_workers_never_run_a_sigterm_handler_while_starting(tmp_path):
    """A finished map sends its workers no signal (they exit on the pool's sentinels); a map stopped early
    terminates workers that are still starting without their inherited handler ever seeing the SIGTERM
    (SIGTERM is blocked until the default action is in place, so it cannot be swallowed or lost)."""
    marker = tmp_path / "sigterm-seen"
    out = subprocess.run(
        [sys.executable, "-c", SLOW_START, str(marker)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and out.stdout.strip() == "done", out.stderr
    assert not marker.exists(), f"a starting worker ran the inherited SIGTERM handler: {marker.read_text()}"
