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
