"""Advantage estimators by name, so every TRAC experiment is a config change.

    compute_advantages(name, batch, cfg, state) -> (advantages (B, T), diagnostics, state)

grpo          A_i broadcast over tokens (lambda = 0)
trac          A_i + lam * w_P * w_D * w_C * r_hat          (TRAC-GRPO)
uncalibrated  A_i + lam * r_hat                            (omega = 1)
reward_mix    GRPO on R'_i = R_i + lam * S_i               (naive reward mixing before normalisation)
distill       r_{i,t}                                       (pure on-policy distillation, sampled-token form)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from searchgym.advantage import trac
from searchgym.advantage.config import TRACConfig
from searchgym.advantage.trac import WDState
from searchgym.registry import registrar


@dataclasses.dataclass
class TRACBatch:
    """One batch of rollouts. `groups` is the group size n (contiguous G x n layout) or a (B,) id tensor.

    Teacher fields may be None only for estimator "grpo"."""

    rewards: torch.Tensor  # (B,)
    groups: int | torch.Tensor
    mask: torch.Tensor  # (B, T) 1 = model token
    teacher_logp: torch.Tensor | None = None  # (B, T)
    behaviour_logp: torch.Tensor | None = None  # (B, T)
    teacher_entropy: torch.Tensor | None = None  # (B, T)
    teacher_max_logp: torch.Tensor | None = None  # (B, T), only for w_C variant "max_prob"
    pass_rate: torch.Tensor | None = None  # (B,) or (G,), NaN = unknown
    vocab_size: int | None = None

    @property
    def gid(self) -> torch.Tensor:
        return trac.group_ids(self.rewards.shape[0], self.groups)

    @property
    def has_teacher(self) -> bool:
        return self.teacher_logp is not None and self.behaviour_logp is not None


Estimator = Callable[[TRACBatch, TRACConfig, WDState], tuple[torch.Tensor, dict, WDState]]
ESTIMATORS: dict[str, Estimator] = {}


register_estimator = registrar(ESTIMATORS, "estimator")


def compute_advantages(
    name: str, batch: TRACBatch, cfg: TRACConfig, state: WDState | None = None
) -> tuple[torch.Tensor, dict, WDState]:
    """Advantages (B, T) by estimator name, diagnostics (floats + "auc_per_group"), and the new w_D state."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown advantage estimator {name!r}; registered: {sorted(ESTIMATORS)}")
    if name != "grpo" and not batch.has_teacher:
        raise ValueError(
            f"estimator {name!r} needs teacher_logp and behaviour_logp; only 'grpo' runs without"
        )
    state = state if state is not None else WDState(window=cfg.wd_window, init=cfg.wd_init)
    return ESTIMATORS[name](batch, cfg, state)


# ------------------------------------------------------------------------------------------- shared parts


def _outcome(batch: TRACBatch, cfg: TRACConfig, rewards: torch.Tensor | None = None) -> torch.Tensor:
    r = batch.rewards if rewards is None else rewards
    return trac.outcome_advantage(r, batch.gid, scale=cfg.outcome_scale, eps=cfg.outcome_eps)


def teacher_terms(batch: TRACBatch, cfg: TRACConfig, state: WDState) -> dict:
    """r, r_hat, S, w_P, w_D, w_C, omega, AUC per group and the new state, each factor honouring its switch."""
    gid, mask = batch.gid, batch.mask
    r = trac.raw_token_reward(batch.teacher_logp, batch.behaviour_logp, mask, cfg.clip)
    r_hat = trac.normalize_token_reward(r, mask, gid, cfg.norm_eps) if cfg.normalize else r
    scores = trac.trajectory_score(r, mask)
    correct = trac.success(batch.rewards, cfg.success_threshold)
    auc = trac.group_auc(scores, correct, gid)
    w_p = w_d = w_c = None
    if cfg.use_wp:
        pass_rate = batch.pass_rate if batch.pass_rate is not None else torch.full_like(scores, float("nan"))
        if pass_rate.shape[0] != scores.shape[0]:  # one rate per group
            pass_rate = pass_rate[gid]
        student = trac.group_pass_rate(batch.rewards, gid, cfg.success_threshold)
        w_p = trac.w_problem(pass_rate, cfg.wp_variant, cfg.wp_tau, student, cfg.wp_unknown)
    if cfg.use_wd:
        if cfg.wd_variant == "auc":
            w_d, auc, state = trac.w_discrimination_auc(scores, correct, gid, state)
        elif cfg.wd_variant == "agreement":
            w_d, state = trac.w_discrimination_agreement(scores, batch.rewards, gid, state)
        else:
            raise ValueError(f"unknown w_D variant {cfg.wd_variant!r}; choose 'auc' or 'agreement'")
    if cfg.use_wc:
        if batch.teacher_entropy is None and cfg.wc_variant != "max_prob":
            raise ValueError("w_C needs teacher_entropy; disable it with use_wc=false or score entropies")
        entropy = batch.teacher_entropy if batch.teacher_entropy is not None else torch.zeros_like(r)
        w_c = trac.w_confidence(
            entropy, mask, cfg.wc_variant, batch.vocab_size, cfg.wc_tau, batch.teacher_max_logp
        )
    omega = trac.combine(w_p, w_d, w_c, mask)
    return dict(
        r=r,
        r_hat=r_hat,
        scores=scores,
        correct=correct,
        auc=auc,
        w_p=w_p,
        w_d=w_d,
        w_c=w_c,
        omega=omega,
        state=state,
    )


def _summary(prefix: str, values: torch.Tensor | None) -> dict[str, float]:
    if values is None or values.numel() == 0:
        return {}
    v = values.float().flatten()
    q = torch.quantile(v, torch.tensor([0.1, 0.5, 0.9]))
    return {
        f"{prefix}/mean": v.mean().item(),
        f"{prefix}/p10": q[0].item(),
        f"{prefix}/p50": q[1].item(),
        f"{prefix}/p90": q[2].item(),
    }


def diagnostics(batch: TRACBatch, terms: dict | None) -> dict:
    """Per-call diagnostics: teacher reward for correct vs wrong rollouts, w_P/w_D/w_C summaries, omega < 0.1,
    AUC per group (NaN for single-outcome groups). Means over empty sets are left out, not NaN."""
    if terms is None:
        return {}
    mask = batch.mask.bool()
    out: dict = {}
    for name, sel in (("correct", terms["correct"]), ("wrong", ~terms["correct"])):
        if sel.any():
            out[f"teacher_reward/{name}"] = terms["scores"][sel].mean().item()
    out |= _summary("w_P", terms["w_p"])
    out |= _summary("w_D", terms["w_d"])
    if terms["w_c"] is not None and mask.any():
        out |= _summary("w_C", terms["w_c"][mask])
    if mask.any():
        out["omega/frac_below_0.1"] = (terms["omega"][mask] < 0.1).float().mean().item()
        out["omega/mean"] = terms["omega"][mask].mean().item()
    auc = terms["auc"]
    if (~torch.isnan(auc)).any():
        out["auc/mean"] = auc[~torch.isnan(auc)].mean().item()
    out["auc_per_group"] = auc.tolist()
    return out


# ---------------------------------------------------------------------------------------------- estimators


@register_estimator("grpo")
def grpo(batch: TRACBatch, cfg: TRACConfig, state: WDState):
    adv = _outcome(batch, cfg)[:, None].expand(batch.mask.shape).clone()
    terms = teacher_terms(batch, cfg, state) if batch.has_teacher else None
    return adv, diagnostics(batch, terms), terms["state"] if terms else state


@register_estimator("trac")
def trac_grpo(batch: TRACBatch, cfg: TRACConfig, state: WDState):
    terms = teacher_terms(batch, cfg, state)
    adv = trac.trac_advantage(
        _outcome(batch, cfg), terms["r_hat"], terms["omega"], batch.mask, cfg.lam, cfg.clamp_eta
    )
    return adv, diagnostics(batch, terms), terms["state"]


@register_estimator("uncalibrated")
def uncalibrated(batch: TRACBatch, cfg: TRACConfig, state: WDState):
    terms = teacher_terms(batch, cfg, state)
    ones = batch.mask.float()
    adv = trac.trac_advantage(_outcome(batch, cfg), terms["r_hat"], ones, batch.mask, cfg.lam, cfg.clamp_eta)
    return adv, diagnostics(batch, terms), terms["state"]


@register_estimator("reward_mix")
def reward_mix(batch: TRACBatch, cfg: TRACConfig, state: WDState):
    terms = teacher_terms(batch, cfg, state)
    mixed = batch.rewards.float() + cfg.lam * terms["scores"]
    adv = _outcome(batch, cfg, mixed)[:, None].expand(batch.mask.shape).clone()
    return adv, diagnostics(batch, terms), terms["state"]


@register_estimator("distill")
def distill(batch: TRACBatch, cfg: TRACConfig, state: WDState):
    terms = teacher_terms(batch, cfg, state)
    return terms["r"].clone(), diagnostics(batch, terms), terms["state"]
