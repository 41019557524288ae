"""Estimator registry: every baseline by name, hand-computed on one small group."""

import math

import pytest
import torch

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.estimators import ESTIMATORS, TRACBatch, compute_advantages, register_estimator
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
        register_estimator("grpo")(lambda b, c, s: None)


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
    single = batch(rewards=torch.zeros(4))  # all wrong: w_D comes from the state
    _, diag, state = compute_advantages("trac", single, TRACConfig(), WDState(history=(0.2,), window=4))
    assert diag["w_D/mean"] == pytest.approx(0.2) and state.history == (0.2,)
    _, _, state = compute_advantages("trac", batch(), TRACConfig(), state)
    assert state.history == (0.2, 0.75)


def test_pass_rate_per_group_equals_per_rollout():
    two = dict(rewards=torch.cat([REWARDS, REWARDS]), mask=torch.cat([MASK, MASK]), groups=4)
    two |= dict(teacher_logp=torch.cat([TEACHER, TEACHER]), behaviour_logp=torch.cat([BEHAVIOUR, BEHAVIOUR]))
    two |= dict(teacher_entropy=torch.zeros(8, 2), vocab_size=8)
    per_group, _, _ = compute_advantages(
        "trac", TRACBatch(**two, pass_rate=torch.tensor([0.2, 0.9])), TRACConfig()
    )
    per_rollout = TRACBatch(**two, pass_rate=torch.tensor([0.2] * 4 + [0.9] * 4))
    expected, diag, _ = compute_advantages("trac", per_rollout, TRACConfig())
    assert torch.equal(per_group, expected) and diag["w_P/mean"] == pytest.approx(0.55)
