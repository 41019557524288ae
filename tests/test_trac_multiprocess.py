"""TRAC-GRPO on 2 CPU processes (accelerate launch, torchrun + gloo) equals 1 process on the same data: the (B, T)
advantages of every rollout and the parameters after one optimizer step. The global batch is 3 groups of 4, so the
middle group is split between the two processes and its statistics must be gathered."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).parent / "trac_multiprocess.py"


def _launch(out: Path, processes: int, estimator: str) -> None:
    out.mkdir()
    # --multi_gpu only selects accelerate's torchrun launcher; without CUDA every process runs on the CPU with gloo
    mode = ["--cpu"] if processes == 1 else ["--multi_gpu"]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(SCRIPT), str(out), estimator,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TRL_EXPERIMENTAL_SILENCE": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]


def test_two_processes_give_the_single_process_advantages_and_step(tmp_path):
    _launch(tmp_path / "one", 1, "trac")
    _launch(tmp_path / "two", 2, "trac")
    one = torch.load(tmp_path / "one" / "rows0.pt")
    parts = [torch.load(tmp_path / "two" / f"rows{k}.pt") for k in (0, 1)]
    assert [p["rows"] for p in parts] == [(0, 6), (6, 12)] and one["rows"] == (0, 12)
    assert all(p["estimator"] == "trac" for p in parts)  # no teacher fallback hid the comparison
    assert torch.equal(parts[0]["reward"], one["reward"])  # the same rollouts on both runs
    assert one["reward"][4:8].unique().numel() > 1  # the split group has a learning signal
    two = torch.cat([p["advantages"] for p in parts])
    assert torch.allclose(two, one["advantages"], atol=1e-6)
    assert (one["advantages"].std(dim=1) > 1e-2).any()  # token-level: the teacher term is in there
    assert parts[0]["wd_state"] == parts[1]["wd_state"] == one["wd_state"]
    p1, p2 = torch.load(tmp_path / "one" / "params.pt"), torch.load(tmp_path / "two" / "params.pt")
    start = torch.load(tmp_path / "one" / "params_before.pt")
    assert p1.keys() == p2.keys() == start.keys()
    moved = max((p1[k] - start[k]).abs().max().item() for k in p1)
    differ = max((p1[k] - p2[k]).abs().max().item() for k in p1)
    assert differ < 1e-5 and differ < moved / 100, (differ, moved)  # float noise only, against a real step
