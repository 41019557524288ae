"""Bootstrap intervals over tasks: the mean of one evaluation, and before / after / gain of two evaluations of the
same tasks (paired: one resample of task indices serves all three, so the gain's interval reflects the pairing).

The unit is the task: a task's value is the share of its samples that succeeded (`harness.pass_rates`). Percentile
intervals from `resamples` draws of a seeded generator, so the same values always give the same interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    mean: float  # the observed mean
    low: float  # percentile bootstrap bounds at `level`
    high: float
    level: float = LEVEL

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _interval(observed: float, draws: np.ndarray, level: float) -> Interval:
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be in (0, 1), e.g. 0.95")
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(observed), float(low), float(high), level)


def _indices(n: int, resamples: int, seed: int) -> np.ndarray:
    if n < 1:
        raise ValueError("a bootstrap needs at least one task")
    if resamples < 1:
        raise ValueError(f"resamples={resamples} must be >= 1")
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def bootstrap_mean(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = 0, level: float = LEVEL
) -> Interval:
    x = np.asarray(values, dtype=np.float64)
    draws = x[_indices(len(x), resamples, seed)].mean(axis=1)
    return _interval(x.mean(), draws, level)


def paired_bootstrap(
    before: Sequence[float],
    after: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[Interval, Interval, Interval]:
    """(before, after, gain = after - before) over the same tasks, `before[i]` and `after[i]` being task i."""
    b, a = np.asarray(before, dtype=np.float64), np.asarray(after, dtype=np.float64)
    if b.shape != a.shape:
        raise ValueError(f"paired bootstrap: {len(b)} tasks before, {len(a)} after; evaluate the same tasks")
    idx = _indices(len(b), resamples, seed)
    db, da = b[idx].mean(axis=1), a[idx].mean(axis=1)
    return (
        _interval(b.mean(), db, level),
        _interval(a.mean(), da, level),
        _interval(a.mean() - b.mean(), da - db, level),
    )
