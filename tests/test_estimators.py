"""Estimator registry: every baseline by name, hand-computed on one small group."""

import math

import pytest
import torch

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.estimators import (
    ESTIMATORS,
    RolloutStats,
    TRACBatch,
    compute,
    compute_advantages,
    estimator_table,
    register_estimator,
    rollout_stats,
)
from searchgym.advantage.trac import WDState

# one group of 4 rollouts x 2 tokens; the last token of rollout 3 is an observation token
REWARDS = torch.tensor([1.0, 0.0, 1.0, 0.0])
MASK = torch.tensor([[1, 1], [1, 1], [1, 1], [1, 0]])
BEHAVIOUR = torch.full((4, 2), -2.0)
TEACHER = torch.tensor([[-1.0, -1.0], [-3.0, -3.0], [-2.0, -2.0], [-2.0, -9.0]])  # r = +1, -1, 0, 0
A = 0.5 / (math.sqrt(1 / 3) + 1e-4)  # |A_i| for 2 correct, 2 wrong


def batch(**kw) -> TRACBatch:
    args = dict(
        rewards=REWARDS,
        success=REWARDS > 0,
        groups=4,
        mask=MASK,
        teacher_logp=TEACHER,
        behaviour_logp=BEHAVIOUR,
        teacher_entropy=torch.zeros(4, 2),
        pass_rate=torch.full((4,), 0.5),
        vocab_size=8,
    )
    return TRACBatch(**(args | kw))


def test_registry_has_every_baseline():
    assert set(ESTIMATORS) >= {"grpo", "trac", "uncalibrated", "reward_mix", "distill"}
    with pytest.raises(ValueError, match="registered"):
        compute_advantages("ppo", batch(), TRACConfig())
    with pytest.raises(ValueError, match="already registered"):
        register_estimator("grpo", equation="A_i", needs_teacher=False)(lambda *a: None)
    assert {n for n, s in ESTIMATORS.items() if not s.needs_teacher} == {"grpo"}


def test_a_registered_estimator_is_selectable_and_explained():
    @register_estimator("halved", equation="A_i / 2 (lam={lam})", needs_teacher=False, summary="half GRPO")
    def halved(batch, cfg, state, stats, rows):
        adv, _, _ = compute_advantages("grpo", TRACBatch(batch.rewards, batch.groups, batch.mask), cfg)
        return adv / 2, None

    try:
        adv, _, _ = compute_advantages("halved", TRACBatch(REWARDS, 4, MASK), TRACConfig())
        assert torch.allclose(adv, torch.tensor([A, -A, A, -A])[:, None].expand(4, 2) / 2)
        assert ESTIMATORS["halved"].render(TRACConfig(lam=0.3)) == "A_i / 2 (lam=0.3)"
        assert "| `halved` | `A_i / 2 (lam=lam)` | no | half GRPO |" in estimator_table()
    finally:
        del ESTIMATORS["halved"]


def test_grpo_broadcasts_outcome_and_runs_without_teacher():
    adv, diag, _ = compute_advantages("grpo", TRACBatch(REWARDS, 4, MASK), TRACConfig())
    expected = torch.tensor([A, -A, A, -A])[:, None].expand(4, 2)
    assert torch.allclose(adv, expected)
    assert diag == {}
    with pytest.raises(ValueError, match="needs teacher_logp"):
        compute_advantages("trac", TRACBatch(REWARDS, 4, MASK), TRACConfig())


def test_trac_by_hand():
    # r = [+1,+1],[-1,-1],[0,0],[0,-] over 7 valid tokens: mean 0, population std sqrt(4/7)
    # S = 1, -1, 0, 0 -> correct {1, 0} vs wrong {-1, 0}: pairs 1>-1, 1>0, 0>-1, 0=0 -> AUC 3.5/4, w_D 0.75
    # entropy 0 -> w_C = 1; pass rate 0.5 -> w_P 0.5; omega = 0.375
    cfg = TRACConfig(lam=0.2, norm_eps=0.0)
    adv, diag, state = compute_advantages("trac", batch(), cfg)
    r_hat = torch.tensor([[1.0, 1.0], [-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]) / math.sqrt(4 / 7)
    expected = torch.tensor([A, -A, A, -A])[:, None] + 0.2 * 0.375 * r_hat * MASK
    assert torch.allclose(adv, expected, atol=1e-6)
    assert diag["auc_per_group"] == [0.875]
    assert diag["w_D/mean"] == pytest.approx(0.75) and diag["w_P/mean"] == pytest.approx(0.5)
    assert diag["teacher_reward/correct"] == pytest.approx(0.5) and diag[
        "teacher_reward/wrong"
    ] == pytest.approx(-0.5)
    assert diag["omega/frac_below_0.1"] == 0.0
    assert state.history == (0.75,)


def test_switches_turn_factors_off():
    cfg = TRACConfig(lam=0.2, norm_eps=0.0, use_wp=False, use_wd=False, use_wc=False)
    on, _, _ = compute_advantages("trac", batch(), cfg)
    unc, _, _ = compute_advantages("uncalibrated", batch(), TRACConfig(lam=0.2, norm_eps=0.0))
    assert torch.allclose(on, unc)
    raw, _, _ = compute_advantages(
        "trac", batch(), TRACConfig(lam=0.2, normalize=False, use_wp=False, use_wd=False, use_wc=False)
    )
    r = (TEACHER - BEHAVIOUR) * MASK
    assert torch.allclose(raw, torch.tensor([A, -A, A, -A])[:, None] + 0.2 * r)


def test_reward_mix_by_hand():
    # R' = R + 0.5 * S = [1.5, -0.5, 1, 0]; mean 0.5; Bessel std sqrt((1 + 1 + .25 + .25) / 3)
    adv, _, _ = compute_advantages("reward_mix", batch(), TRACConfig(lam=0.5))
    mixed = torch.tensor([1.5, -0.5, 1.0, 0.0])
    expected = (mixed - 0.5) / (math.sqrt(2.5 / 3) + 1e-4)
    assert torch.allclose(adv, expected[:, None].expand(4, 2))


def test_distill_is_raw_token_reward():
    adv, _, _ = compute_advantages("distill", batch(), TRACConfig(clip=0.5))
    assert adv.tolist() == [[0.5, 0.5], [-0.5, -0.5], [0.0, 0.0], [0.0, 0.0]]


def test_state_threads_through_calls():
    single = batch(
        rewards=torch.zeros(4), success=torch.zeros(4, dtype=torch.bool)
    )  # all wrong: w_D from the state
    _, diag, state = compute_advantages("trac", single, TRACConfig(), WDState(history=(0.2,), window=4))
    assert diag["w_D/mean"] == pytest.approx(0.2) and state.history == (0.2,)
    _, _, state = compute_advantages("trac", batch(), TRACConfig(), state)
    assert state.history == (0.2, 0.75)


def test_pass_rate_per_group_equals_per_rollout():
    two = dict(rewards=torch.cat([REWARDS, REWARDS]), mask=torch.cat([MASK, MASK]), groups=4)
    two |= dict(success=torch.cat([REWARDS, REWARDS]) > 0)
    two |= dict(teacher_logp=torch.cat([TEACHER, TEACHER]), behaviour_logp=torch.cat([BEHAVIOUR, BEHAVIOUR]))
    two |= dict(teacher_entropy=torch.zeros(8, 2), vocab_size=8)
    per_group, _, _ = compute_advantages(
        "trac", TRACBatch(**two, pass_rate=torch.tensor([0.2, 0.9])), TRACConfig()
    )
    per_rollout = TRACBatch(**two, pass_rate=torch.tensor([0.2] * 4 + [0.9] * 4))
    expected, diag, _ = compute_advantages("trac", per_rollout, TRACConfig())
    assert torch.equal(per_group, expected) and diag["w_P/mean"] == pytest.approx(0.55)


def test_success_comes_from_the_batch_not_from_a_reward_threshold():
    # same rewards, success flipped on one rollout: the AUC and w_D follow the success flags
    flipped = batch(success=torch.tensor([True, False, False, False]))  # rollout 2 (R = 1) did not succeed
    _, diag, _ = compute_advantages("trac", flipped, TRACConfig())
    # S = 1, -1, 0, 0: the one correct rollout (S = 1) beats all three wrong ones -> AUC 1
    assert diag["auc_per_group"] == [1.0]
    with pytest.raises(ValueError, match="success"):
        compute_advantages("trac", batch(success=None), TRACConfig())


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@pytest.mark.parametrize("wd", ["auc", "agreement"])
def test_groups_split_over_processes_give_the_single_process_advantages(name, wd):
    """Two groups of 4 rollouts split 3 / 5 over two "processes": gathering each side's RolloutStats and passing the
    whole population gives exactly the advantages (and the w_D state) of one process holding everything."""
    g = torch.Generator().manual_seed(7)
    b, t = 8, 5
    rewards = torch.tensor([1.0, 0.0, 0.5, 0.0, 1.0, 1.0, 0.0, 0.25])
    full = TRACBatch(
        rewards=rewards,
        success=rewards >= 1.0,
        groups=4,
        mask=(torch.rand(b, t, generator=g) > 0.2).long(),
        teacher_logp=-torch.rand(b, t, generator=g) * 3,
        behaviour_logp=-torch.rand(b, t, generator=g) * 3,
        teacher_entropy=torch.rand(b, t, generator=g),
        pass_rate=torch.tensor([0.3, 0.8]),
        vocab_size=16,
    )
    cfg = TRACConfig(wd_variant=wd, wp_variant="relative", lam=0.5)
    state = WDState(history=(0.4,), window=4)
    ref = compute(name, full, cfg, state)
    group = full.gid
    parts = []
    for rows in (slice(0, 3), slice(3, 8)):
        local = TRACBatch(
            **{
                k: (v[rows] if isinstance(v, torch.Tensor) and v.shape[0] == b else v)
                for k, v in vars(full).items()
            }
        )
        parts.append((rows, local, rollout_stats(local, cfg, group=group[rows])))
    stats = RolloutStats.cat([p[2] for p in parts])
    for rows, local, _ in parts:
        got = compute(name, local, cfg, state, stats=stats, rows=rows)
        assert torch.allclose(got.advantages, ref.advantages[rows], atol=1e-6), name
        assert got.state == ref.state
        assert got.diagnostics["auc_per_group"] == ref.diagnostics["auc_per_group"]
