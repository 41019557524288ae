"""TRAC: teacher token rewards with three calibrations, and the TRAC-GRPO advantage.

Pure functions on torch tensors; no trainer state. The equations are our reconstruction of Wu et al. (ACL 2026),
written out in docs/trac.md (PAPERS.md part B). Shapes used throughout:

    B  rollouts in the batch, T completion tokens (right-padded), G groups (one per prompt)
    rewards      (B,)    outcome reward R_i
    gid          (B,)    long group id in [0, G); build it with `group_ids(B, n)` for the (G groups x n) layout
    mask         (B, T)  1 = model-generated token, 0 = observation / padding (never gets teacher reward)
    teacher_logp, behaviour_logp, teacher_entropy, teacher_max_logp   (B, T)
    success      (B,)    bool, the rollout solved its task (the env's rule, EpisodeSummary.success)
    pass_rate    (B,)    teacher pass rate of the rollout's prompt, NaN when unknown

Group statistics (outcome mean/std, token-reward mean/std, AUC, pass rates) are computed from per-rollout numbers
(`token_moments`, scores, rewards, success), so callers whose groups span processes gather those numbers first and
pass the whole population here (see advantage/estimators.py).
"""

from __future__ import annotations

import dataclasses
import math

import torch


@dataclasses.dataclass(frozen=True)
class WDState:
    """Running w_D over recent mixed groups, used for single-outcome groups. Immutable: functions return a new one."""

    history: tuple[float, ...] = ()
    window: int = 32
    init: float = 0.5

    @property
    def value(self) -> float:
        return sum(self.history) / len(self.history) if self.history else self.init

    def push(self, values: list[float]) -> WDState:
        return dataclasses.replace(self, history=(self.history + tuple(values))[-self.window :])


# ---------------------------------------------------------------------------------------------------- groups


def group_ids(batch_size: int, groups: int | torch.Tensor) -> torch.Tensor:
    """(B,) long group ids: `groups` is either the group size n (contiguous G x n layout) or an id tensor."""
    if isinstance(groups, torch.Tensor):
        if groups.shape != (batch_size,):
            raise ValueError(f"group ids must have shape ({batch_size},), got {tuple(groups.shape)}")
        _, inverse = torch.unique(groups, return_inverse=True)
        return inverse.long()
    if groups < 1 or batch_size % groups:
        raise ValueError(f"batch of {batch_size} rollouts is not a whole number of groups of {groups}")
    return torch.arange(batch_size) // groups


def _group_sum(values: torch.Tensor, gid: torch.Tensor) -> torch.Tensor:
    """Sum (B,) values into (G,) groups."""
    num_groups = int(gid.max()) + 1 if gid.numel() else 0
    return torch.zeros(num_groups, dtype=values.dtype, device=values.device).index_add_(0, gid, values)


def outcome_advantage(
    rewards: torch.Tensor, gid: torch.Tensor, scale: bool = True, eps: float = 1e-4
) -> torch.Tensor:
    """GRPO: A_i = (R_i - mean_g R) / (std_g R + eps), std with Bessel's correction (0 for 1-rollout groups)."""
    rewards = rewards.float()
    count = _group_sum(torch.ones_like(rewards), gid)
    mean = _group_sum(rewards, gid) / count
    centered = rewards - mean[gid]
    if not scale:
        return centered
    var = _group_sum(centered**2, gid) / (count - 1).clamp(min=1)
    std = torch.where(count > 1, var.sqrt(), torch.zeros_like(var))
    return centered / (std[gid] + eps)


# ---------------------------------------------------------------------------------------------- token reward


def raw_token_reward(
    teacher_logp: torch.Tensor, behaviour_logp: torch.Tensor, mask: torch.Tensor, clip: float = 5.0
) -> torch.Tensor:
    """r_{i,t} = clip(log pi_T - log pi_old, -c, c) on model tokens, 0 elsewhere. (B, T)."""
    r = (teacher_logp.float() - behaviour_logp.float()).clamp(-clip, clip)
    return torch.where(mask.bool(), r, torch.zeros_like(r))


def token_moments(r: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per rollout: sum, sum of squares and count of r over valid tokens, (B,) each in float64 (exact group sums)."""
    m = mask.double()
    r = r.double() * m
    return r.sum(1), (r * r).sum(1), m.sum(1)


def group_token_moments(
    r_sum: torch.Tensor, r_sq: torch.Tensor, count: torch.Tensor, gid: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(G,) mean and population std of r over all valid tokens of each group, from per-rollout moments."""
    n = _group_sum(count.double(), gid).clamp(min=1)
    mean = _group_sum(r_sum.double(), gid) / n
    var = (_group_sum(r_sq.double(), gid) / n - mean**2).clamp(min=0)
    return mean, var.sqrt()


def normalize_token_reward(
    r: torch.Tensor,
    mask: torch.Tensor,
    gid: torch.Tensor,
    eps: float = 1e-6,
    moments: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.Tensor:
    """r_hat = (r - mu_q) / (sigma_q + eps), mean and (population) std over all valid tokens of the group. (B, T).

    `moments` = (mean (G,), std (G,)) from `group_token_moments` over every rollout of the groups, when some of them
    live elsewhere (other processes); by default they come from these rows."""
    mean, std = moments if moments is not None else group_token_moments(*token_moments(r, mask), gid)
    centered = (r - mean[gid, None].to(r.dtype)) * mask.to(r.dtype)
    return centered / (std[gid, None].to(r.dtype) + eps)


# ------------------------------------------------------------------------------------------- calibrations


def group_pass_rate(success: torch.Tensor, gid: torch.Tensor) -> torch.Tensor:
    """(B,) the student's pass rate in each rollout's group, from the (B,) success flags."""
    ok = success.float()
    return (_group_sum(ok, gid) / _group_sum(torch.ones_like(ok), gid))[gid]


def _wp_pass_rate(p: torch.Tensor, student: torch.Tensor | None, tau: float) -> torch.Tensor:
    return p.clamp(0, 1)


def _wp_hard_gate(p: torch.Tensor, student: torch.Tensor | None, tau: float) -> torch.Tensor:
    return (p >= tau).float()


def _wp_relative(p: torch.Tensor, student: torch.Tensor | None, tau: float) -> torch.Tensor:
    if student is None:
        raise ValueError("w_P variant 'relative' needs the student's group pass rate")
    # p_T / max(p_T, p_S): full trust when the teacher solves q at least as often as the student; 0/0 -> 0
    top = torch.maximum(p, student)
    return torch.where(top > 0, p / top.clamp(min=1e-12), torch.zeros_like(p))


WP_VARIANTS = {"pass_rate": _wp_pass_rate, "hard_gate": _wp_hard_gate, "relative": _wp_relative}
WP_EQUATIONS = {  # for `searchgym trac explain`; "{field}" = TRACConfig fields
    "pass_rate": "teacher pass rate p_T(q) (unknown -> {wp_unknown})",
    "hard_gate": "1[p_T(q) >= {wp_tau}] (unknown -> {wp_unknown})",
    "relative": "p_T(q) / max(p_T(q), student group pass rate) (unknown -> {wp_unknown})",
}


def w_problem(
    pass_rate: torch.Tensor,
    variant: str = "pass_rate",
    tau: float = 0.5,
    student_pass_rate: torch.Tensor | None = None,
    unknown: float = 1.0,
) -> torch.Tensor:
    """Problem-level expertise w_P in [0, 1], (B,). NaN pass rates (prompt not cached) get `unknown`."""
    if variant not in WP_VARIANTS:
        raise ValueError(f"unknown w_P variant {variant!r}; choose one of {sorted(WP_VARIANTS)}")
    p = pass_rate.float()
    known = ~torch.isnan(p)
    w = WP_VARIANTS[variant](torch.nan_to_num(p, nan=0.0), student_pass_rate, tau)
    return torch.where(known, w, torch.full_like(w, unknown))


def group_auc(scores: torch.Tensor, success: torch.Tensor, gid: torch.Tensor) -> torch.Tensor:
    """(G,) AUC of S between correct and wrong rollouts of each group, ties count 1/2; NaN if single-outcome."""
    num_groups = int(gid.max()) + 1 if gid.numel() else 0
    auc = torch.full((num_groups,), float("nan"))
    for g in range(num_groups):
        s, c = scores[gid == g], success[gid == g]
        pos, neg = s[c], s[~c]
        if pos.numel() and neg.numel():
            diff = pos[:, None] - neg[None, :]
            auc[g] = ((diff > 0).float() + 0.5 * (diff == 0).float()).mean()
    return auc


def w_discrimination_auc(
    scores: torch.Tensor, success: torch.Tensor, rewards: torch.Tensor, gid: torch.Tensor, state: WDState
) -> tuple[torch.Tensor, WDState]:
    """w_D = clip(2 AUC - 1, 0, 1) per group; single-outcome groups use the running mean of recent mixed groups.

    Returns (w_D (B,), new state)."""
    auc = group_auc(scores, success, gid)
    w_group = (2 * auc - 1).clamp(0, 1)
    mixed = ~torch.isnan(auc)
    new_state = state.push(w_group[mixed].tolist())
    w_group = torch.where(mixed, w_group, torch.full_like(w_group, state.value))
    return w_group[gid], new_state


def w_discrimination_agreement(
    scores: torch.Tensor, success: torch.Tensor, rewards: torch.Tensor, gid: torch.Tensor, state: WDState
) -> tuple[torch.Tensor, WDState]:
    """Per rollout: 1 if sign(R_i - mean R) agrees with sign(S_i - mean S), 0 if it disagrees, 1/2 if S_i = mean S.

    Rollouts whose R_i equals the group mean (all of a single-outcome group) use the running state."""
    count = _group_sum(torch.ones_like(scores), gid)
    dr = rewards.float() - (_group_sum(rewards.float(), gid) / count)[gid]
    ds = scores - (_group_sum(scores, gid) / count)[gid]
    agree = 0.5 * (1 + torch.sign(dr) * torch.sign(ds))
    informative = dr != 0
    new_state = state.push([agree[informative].mean().item()] if informative.any() else [])
    return torch.where(informative, agree, torch.full_like(agree, state.value)), new_state


WD_VARIANTS = {"auc": w_discrimination_auc, "agreement": w_discrimination_agreement}
WD_EQUATIONS = {
    "auc": "clip(2 AUC_q(S; correct vs wrong) - 1, 0, 1), single-outcome groups: running mean of the last "
    "{wd_window} mixed groups (start {wd_init})",
    "agreement": "1[sign(R_i - mean R) = sign(S_i - mean S)] per rollout, 1/2 on S ties; single-outcome: running mean",
}


def w_discrimination(
    variant: str,
    scores: torch.Tensor,
    success: torch.Tensor,
    rewards: torch.Tensor,
    gid: torch.Tensor,
    state: WDState,
) -> tuple[torch.Tensor, WDState]:
    """Trajectory-level discrimination w_D in [0, 1], (B,), and the new running state."""
    if variant not in WD_VARIANTS:
        raise ValueError(f"unknown w_D variant {variant!r}; choose one of {sorted(WD_VARIANTS)}")
    return WD_VARIANTS[variant](scores.float(), success.bool(), rewards, gid, state)


def _wc_entropy(entropy: torch.Tensor, max_logp: torch.Tensor | None, vocab_size: int, tau: float):
    return (1 - entropy / math.log(vocab_size)).clamp(0, 1)


def _wc_exp(entropy: torch.Tensor, max_logp: torch.Tensor | None, vocab_size: int, tau: float):
    return torch.exp(-entropy.clamp(min=0) / tau)


def _wc_max_prob(entropy: torch.Tensor, max_logp: torch.Tensor | None, vocab_size: int, tau: float):
    if max_logp is None:
        raise ValueError("w_C variant 'max_prob' needs the teacher's max log-probability per token")
    return torch.exp(max_logp.float()).clamp(0, 1)


WC_VARIANTS = {"entropy": _wc_entropy, "exp": _wc_exp, "max_prob": _wc_max_prob}
WC_EQUATIONS = {"entropy": "1 - H_T / log|V|", "exp": "exp(-H_T / {wc_tau})", "max_prob": "max_v piT(v|s_it)"}


def w_confidence(
    entropy: torch.Tensor,
    mask: torch.Tensor,
    variant: str = "entropy",
    vocab_size: int | None = None,
    tau: float = 1.0,
    max_logp: torch.Tensor | None = None,
) -> torch.Tensor:
    """Token-level confidence w_C in [0, 1], (B, T); 0 on masked tokens."""
    if variant not in WC_VARIANTS:
        raise ValueError(f"unknown w_C variant {variant!r}; choose one of {sorted(WC_VARIANTS)}")
    if variant == "entropy" and (vocab_size is None or vocab_size < 2):
        raise ValueError("w_C variant 'entropy' needs the vocabulary size (>= 2) for log|V|")
    w = WC_VARIANTS[variant](entropy.float(), max_logp, vocab_size or 2, tau)
    return torch.where(mask.bool(), w, torch.zeros_like(w))


def combine(
    w_p: torch.Tensor | None, w_d: torch.Tensor | None, w_c: torch.Tensor | None, mask: torch.Tensor
) -> torch.Tensor:
    """omega = w_P * w_D * w_C (a disabled factor, None, counts as 1); (B, T), 0 on masked tokens."""
    omega = mask.float().clone()
    for w in (w_p, w_d):
        if w is not None:
            omega = omega * w[:, None]
    return omega * w_c if w_c is not None else omega


def trac_advantage(
    outcome: torch.Tensor,
    r_hat: torch.Tensor,
    omega: torch.Tensor,
    mask: torch.Tensor,
    lam: float = 0.1,
    clamp_eta: float | None = None,
) -> torch.Tensor:
    """A_hat_{i,t} = A_i + lam * omega * r_hat, teacher term optionally clamped to +-eta*|A_i|. (B, T)."""
    term = lam * omega * r_hat * mask.float()
    if clamp_eta is not None:
        bound = clamp_eta * outcome.abs()[:, None]
        term = torch.maximum(torch.minimum(term, bound), -bound)
    return outcome[:, None].float() + term
