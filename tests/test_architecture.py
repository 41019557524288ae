"""The package layout follows the data flow: no import runs against it and no two packages import each other."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_against_the_flow():
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py")], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stdout
    assert "0 import(s) against the flow" in out.stdout and "0 package cycle(s)" in out.stdout


def test_the_checker_sees_a_back_edge(tmp_path):
    pkg = tmp_path / "searchgym"
    (pkg / "world").mkdir(parents=True)
    (pkg / "env").mkdir()
    (pkg / "world" / "x.py").write_text("def f():\n    from searchgym.env import y\n")
    (pkg / "env" / "y.py").write_text("from searchgym.world import x\n")
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_graph.py"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "searchgym/world/x.py:2 -> searchgym.env" in out.stdout and "env <-> world" in out.stdout
