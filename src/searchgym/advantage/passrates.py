"""Teacher pass rates for TRAC's problem-level expertise w_P: the file `searchgym teacher passrate` writes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from searchgym.config import ConfigError


def load_pass_rates(path: str | Path) -> dict[str, float]:
    """Read `<taskset_dir>/pass_rates.json` = {"model", "k", "pass_rates": {task_id: rate}}."""
    path = Path(path)
    if path.is_dir():
        path = path / "pass_rates.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found; compute the teacher pass rates first (see docs/trac.md)")
    try:
        data = json.loads(path.read_text())
        rates = {str(k): float(v) for k, v in data["pass_rates"].items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise ConfigError(f"{path}: expected {{'model', 'k', 'pass_rates': {{task_id: rate}}}} ({e})") from e
    bad = {k: v for k, v in rates.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise ConfigError(f"{path}: pass rates must lie in [0, 1]; got {dict(list(bad.items())[:3])}")
    return rates


def pass_rate_tensor(task_ids: list[str | None], rates: dict[str, float] | None) -> torch.Tensor:
    """(B,) pass rate per rollout, NaN where the task has no cached rate."""
    rates = rates or {}
    return torch.tensor(
        [rates.get(str(t), float("nan")) if t is not None else float("nan") for t in task_ids]
    )
