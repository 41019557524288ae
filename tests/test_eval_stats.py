"""Bootstrap intervals of `searchgym.eval.stats`: seeded, paired, and wide or narrow where they should be."""

from __future__ import annotations

import pytest

from searchgym.eval.stats import bootstrap_mean, paired_bootstrap


def test_bootstrap_mean_is_seeded_and_brackets_the_mean():
    values = [1.0] * 30 + [0.0] * 70
    a, b = bootstrap_mean(values, seed=1), bootstrap_mean(values, seed=1)
    assert a == b and a.mean == pytest.approx(0.3)
    assert a.low < 0.3 < a.high and 0.05 < a.high - a.low < 0.25  # ~ ±1.96 * sqrt(.3 * .7 / 100) = ±0.09
    assert bootstrap_mean([0.5] * 10).to_dict() == {"mean": 0.5, "low": 0.5, "high": 0.5, "level": 0.95}


def test_paired_gain_excludes_zero_only_for_a_real_gain():
    before = [0.0] * 100
    after = [1.0] * 30 + [0.0] * 70
    _, _, gain = paired_bootstrap(before, after)
    assert gain.mean == pytest.approx(0.3) and gain.excludes_zero()
    # the same tasks flipping both ways: no net gain, the interval covers 0
    b2 = [1.0] * 10 + [0.0] * 90
    a2 = [0.0] * 10 + [1.0] * 10 + [0.0] * 80
    _, _, none = paired_bootstrap(b2, a2)
    assert none.mean == pytest.approx(0.0) and not none.excludes_zero()
    # pairing: a constant +0.1 on every task is certain even though both means vary a lot over tasks
    base = [i / 100 for i in range(100)]
    _, _, shift = paired_bootstrap(base, [x + 0.1 for x in base])
    assert shift.low == pytest.approx(0.1) and shift.high == pytest.approx(0.1)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="same tasks"):
        paired_bootstrap([0.0, 1.0], [1.0])
    with pytest.raises(ValueError, match="at least one task"):
        bootstrap_mean([])
    with pytest.raises(ValueError, match="level"):
        bootstrap_mean([1.0], level=1.5)
