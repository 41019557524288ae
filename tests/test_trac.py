"""TRAC pure functions: hand-computed examples, then properties."""

import math

import pytest
import torch

from searchgym.advantage import trac
from searchgym.advantage.config import TRACConfig
from searchgym.advantage.passrates import load_pass_rates, pass_rate_tensor
from searchgym.advantage.trac import WDState


def test_group_ids_layout_and_explicit_ids():
    assert trac.group_ids(6, 3).tolist() == [0, 0, 0, 1, 1, 1]
    assert trac.group_ids(4, torch.tensor([7, 3, 7, 3])).tolist() == [1, 0, 1, 0]
    with pytest.raises(ValueError, match="whole number of groups"):
        trac.group_ids(5, 2)


def test_raw_token_reward_clips_and_masks():
    teacher = torch.tensor([[-1.0, -2.0, -10.0], [0.0, -0.5, 0.0]])
    behaviour = torch.tensor([[-2.0, -1.0, -1.0], [-1.0, -0.5, -3.0]])
    mask = torch.tensor([[1, 1, 1], [1, 1, 0]])
    r = trac.raw_token_reward(teacher, behaviour, mask, clip=5.0)
    assert r.tolist() == [[1.0, -1.0, -5.0], [1.0, 0.0, 0.0]]


def test_normalize_token_reward_by_hand():
    # one group, valid tokens 1, -1, 3: mean 1, population std sqrt(8/3)
    r = torch.tensor([[1.0, -1.0], [3.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    out = trac.normalize_token_reward(r, mask, torch.tensor([0, 0]), eps=0.0)
    s = math.sqrt(8 / 3)
    assert torch.allclose(out, torch.tensor([[0.0, -2 / s], [2 / s, 0.0]]))


def test_normalize_is_per_group():
    r = torch.tensor([[1.0, 3.0], [10.0, 30.0]])
    out = trac.normalize_token_reward(r, torch.ones(2, 2), torch.tensor([0, 1]), eps=0.0)
    assert torch.allclose(out, torch.tensor([[-1.0, 1.0], [-1.0, 1.0]]))


def test_outcome_advantage_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    a = trac.outcome_advantage(rewards, trac.group_ids(8, 4), scale=True, eps=1e-4)
    std = math.sqrt(1 / 3)  # Bessel: sum of squares 4 * 0.25 over 3
    expected = [0.5 / (std + 1e-4), -0.5 / (std + 1e-4)] * 2
    assert torch.allclose(a[:4], torch.tensor([expected[0], expected[1], expected[1], expected[0]]))
    assert a[4:].tolist() == [0.0] * 4
    unscaled = trac.outcome_advantage(rewards, trac.group_ids(8, 4), scale=False)
    assert unscaled[:4].tolist() == [0.5, -0.5, -0.5, 0.5]


def _score(r, mask):
    """S_i through the per-rollout moments, as the estimators compute it."""
    from searchgym.advantage.estimators import RolloutStats

    r_sum, r_sq, count = trac.token_moments(r, mask)
    zeros = torch.zeros(r.shape[0])
    return RolloutStats(zeros.long(), zeros, zeros.bool(), r_sum, r_sq, count).score


def test_trajectory_score_mean_over_valid_tokens():
    r = torch.tensor([[1.0, 2.0, 9.0], [0.0, 0.0, 0.0]])
    assert _score(r, torch.tensor([[1, 1, 0], [0, 0, 0]])).tolist() == [1.5, 0.0]
    r_sum, r_sq, count = trac.token_moments(r, torch.tensor([[1, 1, 0], [0, 0, 0]]))
    assert r_sum.tolist() == [3.0, 0.0] and r_sq.tolist() == [5.0, 0.0] and count.tolist() == [2.0, 0.0]


def test_normalize_from_gathered_moments_equals_local():
    # a group split over two "processes": moments of both halves summed equal the moments of the whole group
    r = torch.tensor([[1.0, -1.0], [3.0, 0.0], [2.0, 2.0], [-4.0, 1.0]])
    mask = torch.tensor([[1, 1], [1, 0], [1, 1], [0, 1]])
    gid = torch.tensor([0, 0, 0, 0])
    whole = trac.normalize_token_reward(r, mask, gid, eps=0.0)
    moments = trac.group_token_moments(*trac.token_moments(r, mask), gid)
    halves = [
        trac.normalize_token_reward(r[i : i + 2], mask[i : i + 2], gid[:2], 0.0, moments) for i in (0, 2)
    ]
    assert torch.allclose(torch.cat(halves), whole, atol=1e-6)


def test_group_auc_ties_count_half():
    scores = torch.tensor([0.9, 0.1, 0.5, 0.5])
    correct = torch.tensor([True, False, True, False])
    # pairs (correct, wrong): (0.9,0.1)=1 (0.9,0.5)=1 (0.5,0.1)=1 (0.5,0.5)=1/2 -> 3.5/4
    auc = trac.group_auc(scores, correct, torch.zeros(4, dtype=torch.long))
    assert auc.tolist() == [0.875]
    w, state = trac.w_discrimination_auc(scores, correct, None, torch.zeros(4, dtype=torch.long), WDState())
    assert w.tolist() == [0.75] * 4
    assert state.history == (0.75,)


def test_w_d_running_fallback_for_single_outcome_groups():
    # group 0 mixed and perfectly ranked (w_D = 1), group 1 all wrong -> uses the state from *before* this call
    scores = torch.tensor([1.0, 0.0, 0.3, 0.2])
    correct = torch.tensor([True, False, False, False])
    gid = torch.tensor([0, 0, 1, 1])
    state = WDState(history=(0.2, 0.4), window=3, init=0.5)
    w, new = trac.w_discrimination("auc", scores, correct, None, gid, state)
    assert torch.allclose(w, torch.tensor([1.0, 1.0, 0.3, 0.3]))
    assert math.isnan(trac.group_auc(scores, correct, gid)[1].item())
    assert new.history == (0.2, 0.4, 1.0) and new.value == pytest.approx(1.6 / 3)
    assert state.history == (0.2, 0.4)  # the input state is not mutated
    assert WDState(init=0.5).value == 0.5
    assert WDState(history=(1.0, 0.0, 0.0), window=2).push([1.0]).history == (0.0, 1.0)


def test_w_d_agreement_per_rollout():
    rewards = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0])
    scores = torch.tensor([2.0, 1.0, 0.0, 1.0, 5.0, 5.0])
    gid = torch.tensor([0, 0, 1, 1, 2, 2])
    w, state = trac.w_discrimination("agreement", scores, rewards > 0, rewards, gid, WDState(init=0.25))
    # group 0 agrees, group 1 disagrees, group 2 is single-outcome -> init
    assert w.tolist() == [1.0, 1.0, 0.0, 0.0, 0.25, 0.25]
    assert state.history == (0.5,)
    with pytest.raises(ValueError, match="unknown w_D variant"):
        trac.w_discrimination("oracle", scores, rewards > 0, rewards, gid, WDState())


def test_w_problem_variants():
    p = torch.tensor([0.3, float("nan"), 0.8])
    assert torch.allclose(trac.w_problem(p, "pass_rate", unknown=0.7), torch.tensor([0.3, 0.7, 0.8]))
    assert trac.w_problem(p, "hard_gate", tau=0.5).tolist() == [0.0, 1.0, 1.0]
    student = torch.tensor([0.6, 0.5, 0.2])
    assert torch.allclose(
        trac.w_problem(p, "relative", student_pass_rate=student), torch.tensor([0.5, 1.0, 1.0])
    )
    zero = trac.w_problem(torch.tensor([0.0]), "relative", student_pass_rate=torch.tensor([0.0]))
    assert zero.tolist() == [0.0]
    with pytest.raises(ValueError, match="unknown w_P variant"):
        trac.w_problem(p, "oracle")


def test_w_confidence_variants():
    vocab = 64
    entropy = torch.tensor([[math.log(vocab) / 2, 1.0, 0.0]])
    mask = torch.tensor([[1, 1, 0]])
    w = trac.w_confidence(entropy, mask, "entropy", vocab_size=vocab)
    assert torch.allclose(w, torch.tensor([[0.5, 1 - 1 / math.log(vocab), 0.0]]))
    w = trac.w_confidence(entropy, mask, "exp", tau=2.0)
    assert torch.allclose(w, torch.tensor([[math.exp(-math.log(vocab) / 4), math.exp(-0.5), 0.0]]))
    max_logp = torch.full((1, 3), math.log(0.5))
    assert torch.allclose(
        trac.w_confidence(entropy, mask, "max_prob", max_logp=max_logp), torch.tensor([[0.5, 0.5, 0.0]])
    )
    with pytest.raises(ValueError, match="vocabulary size"):
        trac.w_confidence(entropy, mask, "entropy")


def test_combine_and_trac_advantage_with_clamp():
    mask = torch.tensor([[1, 1], [1, 0]])
    omega = trac.combine(torch.tensor([0.5, 1.0]), None, torch.tensor([[1.0, 2.0], [1.0, 1.0]]), mask)
    assert omega.tolist() == [[0.5, 1.0], [1.0, 0.0]]
    a = torch.tensor([1.0, -0.5])
    r_hat = torch.tensor([[2.0, -2.0], [4.0, 1.0]])
    out = trac.trac_advantage(a, r_hat, omega, mask, lam=0.1)
    assert torch.allclose(out, torch.tensor([[1.1, 0.8], [-0.1, -0.5]]))
    clamped = trac.trac_advantage(a, r_hat, omega, mask, lam=0.1, clamp_eta=0.5)
    assert torch.allclose(clamped, torch.tensor([[1.1, 0.8], [-0.25, -0.5]]))
    assert (torch.sign(clamped) == torch.sign(a)[:, None]).all()  # the outcome's sign is preserved


# -------------------------------------------------------------------------------------------------- properties


def _random_batch(num_groups: int, n: int, t: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    rewards = (torch.rand(num_groups * n, generator=g) < 0.5).float()
    behaviour = -torch.rand(num_groups * n, t, generator=g) * 3
    teacher = -torch.rand(num_groups * n, t, generator=g) * 3
    return rewards, behaviour, teacher, torch.ones(num_groups * n, t), trac.group_ids(num_groups * n, n)


def test_random_teacher_gets_small_w_d_and_perfect_teacher_gets_one():
    rewards, behaviour, teacher, mask, gid = _random_batch(200, 64, 6, seed=0)
    r = trac.raw_token_reward(teacher, behaviour, mask)
    s = _score(r, mask)
    correct = rewards > 0
    w_random, _ = trac.w_discrimination_auc(s, correct, rewards, gid, WDState(init=0.0))
    auc = trac.group_auc(s, correct, gid)
    # 2*AUC - 1 is centred at 0 with sd ~0.07 for 32 vs 32; clipping at 0 leaves a mean of ~0.03
    assert w_random.mean().item() < 0.08
    assert abs(auc[~torch.isnan(auc)].mean().item() - 0.5) < 0.02
    perfect = teacher + 10 * rewards[:, None]  # correct rollouts get a higher teacher log-prob everywhere
    r = trac.raw_token_reward(perfect, behaviour, mask, clip=100.0)
    w_perfect, _ = trac.w_discrimination_auc(_score(r, mask), correct, rewards, gid, WDState(init=0.0))
    assert w_perfect.min().item() == 1.0


def test_random_teacher_advantage_tends_to_grpo():
    rewards, behaviour, teacher, mask, gid = _random_batch(100, 32, 6, seed=1)
    a = trac.outcome_advantage(rewards, gid)
    r = trac.raw_token_reward(teacher, behaviour, mask)
    r_hat = trac.normalize_token_reward(r, mask, gid)
    w_d, _ = trac.w_discrimination_auc(_score(r, mask), rewards > 0, rewards, gid, WDState(init=0.0))
    calibrated = trac.trac_advantage(a, r_hat, trac.combine(None, w_d, None, mask), mask, lam=0.5)
    uncalibrated = trac.trac_advantage(a, r_hat, mask.float(), mask, lam=0.5)
    gap_cal = (calibrated - a[:, None]).abs().mean().item()
    gap_unc = (uncalibrated - a[:, None]).abs().mean().item()
    assert gap_cal < 0.25 * gap_unc


def test_constant_shift_of_teacher_logp_leaves_normalised_reward_unchanged():
    rewards, behaviour, teacher, mask, gid = _random_batch(4, 4, 5, seed=2)
    mask[0, 3:] = 0
    base = trac.normalize_token_reward(trac.raw_token_reward(teacher, behaviour, mask), mask, gid)
    shifted = trac.normalize_token_reward(trac.raw_token_reward(teacher - 0.7, behaviour, mask), mask, gid)
    assert torch.allclose(base, shifted, atol=1e-5)


@pytest.mark.parametrize(
    "case",
    ["all_equal_rewards", "one_token", "all_masked", "single_rollout"],
)
def test_degenerate_groups_stay_finite(case):
    from searchgym.advantage.estimators import ESTIMATORS, TRACBatch, compute_advantages

    n, t = {"one_token": (4, 1), "single_rollout": (1, 4)}.get(case, (4, 4))
    rewards = torch.ones(2 * n) if case == "all_equal_rewards" else torch.tensor([1.0, 0.0] * n)[: 2 * n]
    mask = torch.zeros(2 * n, t) if case == "all_masked" else torch.ones(2 * n, t)
    batch = TRACBatch(
        rewards=rewards,
        success=rewards > 0,
        groups=n,
        mask=mask,
        teacher_logp=torch.full((2 * n, t), -1.0),  # constant: zero variance inside every group
        behaviour_logp=torch.full((2 * n, t), -1.0),
        teacher_entropy=torch.zeros(2 * n, t),
        pass_rate=torch.full((2 * n,), float("nan")),
        vocab_size=16,
    )
    for name in ESTIMATORS:
        adv, diag, state = compute_advantages(name, batch, TRACConfig(), None)
        assert adv.shape == (2 * n, t) and torch.isfinite(adv).all(), name
        assert all(math.isfinite(v) for v in diag.values() if isinstance(v, float)), name
    if case == "all_equal_rewards":
        assert (adv == 0).all()


def test_observation_tokens_get_no_teacher_term():
    from searchgym.advantage.estimators import TRACBatch, compute_advantages

    rewards, behaviour, teacher, mask, _ = _random_batch(2, 4, 6, seed=3)
    mask[:, 2:4] = 0  # an observation span in the middle of every rollout
    batch = TRACBatch(rewards, 4, mask, rewards > 0, teacher, behaviour, torch.rand(8, 6), vocab_size=32)
    a = trac.outcome_advantage(rewards, trac.group_ids(8, 4))
    for name in ("trac", "uncalibrated"):
        adv, _, _ = compute_advantages(name, batch, TRACConfig(lam=1.0), None)
        assert torch.equal(adv[:, 2:4], a[:, None].expand(8, 2))
        assert not torch.allclose(adv[:, :2], a[:, None].expand(8, 2))
    adv, _, _ = compute_advantages("distill", batch, TRACConfig(), None)
    assert (adv[:, 2:4] == 0).all()


def test_config_switches_round_trip_yaml(tmp_path):
    cfg = TRACConfig().override(["wc_variant=exp", "clamp_eta=0.5", "use_wd=false"])
    cfg.to_yaml(tmp_path / "trac.yaml")
    again = TRACConfig.from_yaml(tmp_path / "trac.yaml")
    assert again == cfg and again.clamp_eta == 0.5 and not again.use_wd


def test_load_pass_rates(tmp_path):
    (tmp_path / "pass_rates.json").write_text('{"model": "t", "k": 4, "pass_rates": {"a": 0.25, "b": 1}}')
    rates = load_pass_rates(tmp_path)
    assert rates == {"a": 0.25, "b": 1.0}
    p = pass_rate_tensor(["b", "zzz", None], rates)
    assert p[0] == 1.0 and torch.isnan(p[1:]).all()
    (tmp_path / "bad.json").write_text('{"pass_rates": {"a": 3}}')
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        load_pass_rates(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="pass rates"):
        load_pass_rates(tmp_path / "missing.json")


def test_config_refuses_out_of_range_values():
    from searchgym.config import ConfigError

    with pytest.raises(ConfigError, match="clip=0.0"):
        TRACConfig(clip=0.0)
    with pytest.raises(ConfigError, match="wd_init=2"):
        TRACConfig().override(["wd_init=2"])
