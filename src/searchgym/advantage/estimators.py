"""Advantage estimators by name, so every TRAC experiment is a config change. One pure API serves a single process,
N processes (TRL with accelerate) and verl's single controller.

All rollouts of every group in one place (one process, verl):

    batch = TRACBatch(rewards, success, groups=n, mask=mask, teacher_logp=..., behaviour_logp=...,
                      teacher_entropy=..., pass_rate=..., vocab_size=...)
    adv, diagnostics, state = compute_advantages("trac", batch, TRACConfig(), state)      # adv (B, T)

Groups spread over processes (each process holds a contiguous slice of the rows): compute the per-rollout statistics
of the local rows with their *global* group ids, gather them in process order, and pass the whole population with
the local rows' positions in it. The advantages then equal the single-process ones:

    local = rollout_stats(batch, cfg, group=global_group_ids)          # 6 numbers per rollout
    stats = RolloutStats.from_tensor(gather(local.to_tensor()))         # every process's rollouts, in order
    adv, diagnostics, state = compute_advantages("trac", batch, cfg, state, stats=stats, rows=slice(lo, hi))

`RolloutStats` holds exactly what the group calibrations need: reward R_i, success, and the sum, sum of squares and
count of the raw token reward over the rollout's valid tokens (token normalisation mean/std, S_i for the AUC).
Every process computes the same group quantities and the same new w_D state.

Estimators register with their equation (placeholders are TRACConfig fields) and whether they need a teacher;
`searchgym trac explain`, `searchgym trac estimators`, the trainers' checks and docs/trac.md read that metadata:

    @register_estimator("name", equation="A_i + {lam} * ...", needs_teacher=True, summary="...")
    def name(batch, cfg, state, stats, rows) -> (advantages (B, T), TeacherTerms or None)

`compute(...)` returns the same as `compute_advantages` plus the `TeacherTerms` (an `Advantages` record).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from searchgym.advantage import trac
from searchgym.advantage.config import TRACConfig
from searchgym.advantage.trac import WDState
from searchgym.config import ConfigError
from searchgym.registry import registrar


@dataclasses.dataclass
class TRACBatch:
    """The local rollouts. `groups` is the group size n (contiguous G x n layout) or a (B,) id tensor; it is not used
    when `compute_advantages` gets `stats` (those carry the global group ids).

    Teacher fields and `success` may be None only for estimators that need no teacher ("grpo")."""

    rewards: torch.Tensor  # (B,) outcome reward R_i
    groups: int | torch.Tensor
    mask: torch.Tensor  # (B, T) 1 = model token
    success: torch.Tensor | None = None  # (B,) bool: solved its task (the env's rule, EpisodeSummary.success)
    teacher_logp: torch.Tensor | None = None  # (B, T)
    behaviour_logp: torch.Tensor | None = None  # (B, T)
    teacher_entropy: torch.Tensor | None = None  # (B, T)
    teacher_max_logp: torch.Tensor | None = None  # (B, T), only for w_C variant "max_prob"
    pass_rate: torch.Tensor | None = (
        None  # (B,) per rollout or (G,) per group of the population, NaN = unknown
    )
    vocab_size: int | None = None

    @property
    def gid(self) -> torch.Tensor:
        return trac.group_ids(self.rewards.shape[0], self.groups)

    @property
    def has_teacher(self) -> bool:
        return self.teacher_logp is not None and self.behaviour_logp is not None


@dataclasses.dataclass(frozen=True)
class RolloutStats:
    """Per-rollout numbers of a whole population of groups (N rollouts): what every group calibration needs."""

    group: torch.Tensor  # (N,) long group id in [0, G)
    reward: torch.Tensor  # (N,) R_i
    success: torch.Tensor  # (N,) bool
    r_sum: torch.Tensor  # (N,) sum of the raw token reward r over valid tokens (0 without a teacher)
    r_sq: torch.Tensor  # (N,) sum of r^2 over valid tokens
    tokens: torch.Tensor  # (N,) number of valid tokens

    FIELDS = ("group", "reward", "success", "r_sum", "r_sq", "tokens")

    @property
    def score(self) -> torch.Tensor:
        """S_i = mean over valid tokens of r (0 for a rollout without model tokens)."""
        return (self.r_sum / self.tokens.clamp(min=1)).float()

    def to_tensor(self) -> torch.Tensor:
        """(N, 6) float64, for `accelerator.gather` / `torch.distributed.all_gather` (ids and counts stay exact)."""
        return torch.stack([getattr(self, f).double() for f in self.FIELDS], dim=1)

    @classmethod
    def from_tensor(cls, t: torch.Tensor) -> RolloutStats:
        t = t.detach().cpu()
        g, reward, ok, r_sum, r_sq, tokens = t.double().unbind(1)
        return cls(g.long(), reward.float(), ok.bool(), r_sum, r_sq, tokens)

    @classmethod
    def cat(cls, parts: list[RolloutStats]) -> RolloutStats:
        return cls.from_tensor(torch.cat([p.to_tensor() for p in parts]))


def rollout_stats(batch: TRACBatch, cfg: TRACConfig, group: torch.Tensor | None = None) -> RolloutStats:
    """The local rows' `RolloutStats`; `group` = their global group ids (default: `batch.gid`)."""
    b = batch.rewards.shape[0]
    group = batch.gid if group is None else group.long()
    success = batch.success if batch.success is not None else torch.zeros(b, dtype=torch.bool)
    if batch.has_teacher:
        r = trac.raw_token_reward(batch.teacher_logp, batch.behaviour_logp, batch.mask, cfg.clip)
        r_sum, r_sq, tokens = trac.token_moments(r, batch.mask)
    else:
        r_sum = r_sq = torch.zeros(b, dtype=torch.float64)
        tokens = batch.mask.double().sum(1)
    return RolloutStats(group, batch.rewards.float().cpu(), success.bool().cpu(), r_sum, r_sq, tokens)


@dataclasses.dataclass(frozen=True)
class TeacherTerms:
    """Everything between the teacher's log-probs and the advantage, for the local rows (B) and the population's
    groups (G). A disabled calibration factor is None (it counts as 1)."""

    r: torch.Tensor  # (B, T) raw token reward, clipped, 0 on masked tokens
    r_hat: torch.Tensor  # (B, T) group-normalised token reward (= r with normalize off)
    scores: torch.Tensor  # (B,) S_i
    success: torch.Tensor  # (B,) bool
    auc: torch.Tensor  # (G,) AUC of S, correct vs wrong, per group of the population; NaN = single-outcome
    w_p: torch.Tensor | None  # (B,)
    w_d: torch.Tensor | None  # (B,)
    w_c: torch.Tensor | None  # (B, T)
    omega: torch.Tensor  # (B, T) w_P * w_D * w_C, 0 on masked tokens
    state: WDState  # the running w_D after this batch


Estimator = Callable[
    [TRACBatch, TRACConfig, WDState, RolloutStats, torch.Tensor], tuple[torch.Tensor, TeacherTerms | None]
]


@dataclasses.dataclass(frozen=True)
class Advantages:
    advantages: torch.Tensor  # (B, T)
    terms: TeacherTerms | None  # None when the batch has no teacher scores
    diagnostics: dict
    state: WDState  # the running w_D after this batch


@dataclasses.dataclass(frozen=True)
class EstimatorSpec:
    name: str
    fn: Estimator
    equation: str  # the advantage; "{field}" placeholders are TRACConfig fields, "{clamp}" the optional clamp
    needs_teacher: bool
    summary: str = ""

    def render(self, cfg: TRACConfig | None = None) -> str:
        """The equation with `cfg`'s numbers, or symbolic (lam, ...) without a config."""
        if cfg is None:
            values = {f.name: f.name for f in dataclasses.fields(TRACConfig)} | {"clamp": ""}
        else:
            values = cfg.to_dict()
            values["clamp"] = (
                f", teacher term clamped to +-{cfg.clamp_eta}*|A_i|" if cfg.clamp_eta is not None else ""
            )
        return self.equation.format(**values)


ESTIMATORS: dict[str, EstimatorSpec] = {}
_register = registrar(ESTIMATORS, "estimator")


def register_estimator(
    name: str, *, equation: str, needs_teacher: bool, summary: str = ""
) -> Callable[[Estimator], Estimator]:
    def deco(fn: Estimator) -> Estimator:
        _register(name)(EstimatorSpec(name, fn, equation, needs_teacher, summary))
        return fn

    return deco


def estimator_spec(name: str) -> EstimatorSpec:
    if name not in ESTIMATORS:
        raise ConfigError(f"unknown advantage estimator {name!r}; registered: {sorted(ESTIMATORS)}")
    return ESTIMATORS[name]


def compute_advantages(
    name: str,
    batch: TRACBatch,
    cfg: TRACConfig,
    state: WDState | None = None,
    stats: RolloutStats | None = None,
    rows: slice | torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict, WDState]:
    """Advantages (B, T) by estimator name, diagnostics (floats + "auc_per_group"), and the new w_D state.

    `stats`/`rows`: the population the local rows belong to and their positions in it (default: these rows alone)."""
    r = compute(name, batch, cfg, state, stats, rows)
    return r.advantages, r.diagnostics, r.state


def compute(
    name: str,
    batch: TRACBatch,
    cfg: TRACConfig,
    state: WDState | None = None,
    stats: RolloutStats | None = None,
    rows: slice | torch.Tensor | None = None,
) -> Advantages:
    """`compute_advantages`, keeping the `TeacherTerms` too."""
    spec = estimator_spec(name)
    if spec.needs_teacher and not batch.has_teacher:
        raise ValueError(
            f"estimator {name!r} needs teacher_logp and behaviour_logp (registered needs_teacher)"
        )
    if batch.has_teacher and batch.success is None:
        raise ValueError(
            "TRACBatch.success is missing: w_D and the relative w_P need each rollout's success (the env's rule, "
            "EpisodeSummary.success)"
        )
    state = state if state is not None else WDState(window=cfg.wd_window, init=cfg.wd_init)
    if stats is None:
        stats, rows = rollout_stats(batch, cfg), None
    b = batch.rewards.shape[0]
    if rows is None:
        rows = torch.arange(b)
    elif isinstance(rows, slice):
        rows = torch.arange(stats.group.shape[0])[rows]
    if rows.shape != (b,):
        raise ValueError(f"rows selects {tuple(rows.shape)} of the population for a batch of {b} rollouts")
    advantages, terms = spec.fn(batch, cfg, state, stats, rows)
    new_state = terms.state if terms is not None else state
    return Advantages(advantages, terms, diagnostics(batch, terms, stats), new_state)


# ------------------------------------------------------------------------------------------- shared parts


def outcome_advantages(
    stats: RolloutStats, cfg: TRACConfig, rewards: torch.Tensor | None = None
) -> torch.Tensor:
    """(N,) GRPO outcome advantage A_i of every rollout of the population."""
    r = stats.reward if rewards is None else rewards
    return trac.outcome_advantage(r, stats.group, scale=cfg.outcome_scale, eps=cfg.outcome_eps)


def teacher_terms(
    batch: TRACBatch, cfg: TRACConfig, state: WDState, stats: RolloutStats, rows: torch.Tensor
) -> TeacherTerms:
    """r, r_hat, S, w_P, w_D, w_C, omega, AUC per group and the new state, each factor honouring its switch."""
    gid_all, mask = stats.group, batch.mask
    gid = gid_all[rows]
    r = trac.raw_token_reward(batch.teacher_logp, batch.behaviour_logp, mask, cfg.clip)
    moments = trac.group_token_moments(stats.r_sum, stats.r_sq, stats.tokens, gid_all)
    r_hat = trac.normalize_token_reward(r, mask, gid, cfg.norm_eps, moments) if cfg.normalize else r
    scores_all, success_all = stats.score, stats.success
    auc = trac.group_auc(scores_all, success_all, gid_all)
    w_p = w_d = w_c = None
    if cfg.use_wp:
        b = rows.shape[0]
        pass_rate = batch.pass_rate if batch.pass_rate is not None else torch.full((b,), float("nan"))
        if pass_rate.shape[0] != b:  # one rate per group of the population
            pass_rate = pass_rate[gid]
        student = trac.group_pass_rate(success_all, gid_all)[rows]
        w_p = trac.w_problem(pass_rate, cfg.wp_variant, cfg.wp_tau, student, cfg.wp_unknown)
    if cfg.use_wd:
        w_all, state = trac.w_discrimination(
            cfg.wd_variant, scores_all, success_all, stats.reward, gid_all, state
        )
        w_d = w_all[rows]
    if cfg.use_wc:
        if batch.teacher_entropy is None and cfg.wc_variant != "max_prob":
            raise ValueError("w_C needs teacher_entropy; disable it with use_wc=false or score entropies")
        entropy = batch.teacher_entropy if batch.teacher_entropy is not None else torch.zeros_like(r)
        w_c = trac.w_confidence(
            entropy, mask, cfg.wc_variant, batch.vocab_size, cfg.wc_tau, batch.teacher_max_logp
        )
    omega = trac.combine(w_p, w_d, w_c, mask)
    return TeacherTerms(
        r=r,
        r_hat=r_hat,
        scores=scores_all[rows],
        success=success_all[rows],
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


def diagnostics(batch: TRACBatch, terms: TeacherTerms | None, stats: RolloutStats) -> dict:
    """Per-call diagnostics: teacher reward S for correct vs wrong rollouts and AUC per group (over the population),
    w_P/w_D/w_C summaries and the share of omega < 0.1 (over the local rows). Means over empty sets are left out."""
    if terms is None:
        return {}
    mask = batch.mask.bool()
    out: dict = {}
    scores = stats.score
    for name, sel in (("correct", stats.success), ("wrong", ~stats.success)):
        if sel.any():
            out[f"teacher_reward/{name}"] = scores[sel].mean().item()
    out |= _summary("w_P", terms.w_p)
    out |= _summary("w_D", terms.w_d)
    if terms.w_c is not None and mask.any():
        out |= _summary("w_C", terms.w_c[mask])
    if mask.any():
        out["omega/frac_below_0.1"] = (terms.omega[mask] < 0.1).float().mean().item()
        out["omega/mean"] = terms.omega[mask].mean().item()
    auc = terms.auc
    if (~torch.isnan(auc)).any():
        out["auc/mean"] = auc[~torch.isnan(auc)].mean().item()
    out["auc_per_group"] = auc.tolist()
    return out


def _broadcast(per_rollout: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return per_rollout.float()[:, None].expand(mask.shape).clone()


# ---------------------------------------------------------------------------------------------- estimators


@register_estimator(
    "grpo",
    equation="A_i",
    needs_teacher=False,
    summary="GRPO: the outcome advantage on every token (lambda = 0)",
)
def grpo(batch, cfg, state, stats, rows):
    adv = _broadcast(outcome_advantages(stats, cfg)[rows], batch.mask)
    return adv, teacher_terms(batch, cfg, state, stats, rows) if batch.has_teacher else None


@register_estimator(
    "trac",
    equation="A_i + {lam} * omega * r^_it{clamp}",
    needs_teacher=True,
    summary="TRAC-GRPO: calibrated teacher token reward, omega = w_P * w_D * w_C",
)
def trac_grpo(batch, cfg, state, stats, rows):
    terms = teacher_terms(batch, cfg, state, stats, rows)
    outcome = outcome_advantages(stats, cfg)[rows]
    adv = trac.trac_advantage(outcome, terms.r_hat, terms.omega, batch.mask, cfg.lam, cfg.clamp_eta)
    return adv, terms


@register_estimator(
    "uncalibrated",
    equation="A_i + {lam} * r^_it{clamp}",
    needs_teacher=True,
    summary="the teacher token reward without calibration (omega = 1)",
)
def uncalibrated(batch, cfg, state, stats, rows):
    terms = teacher_terms(batch, cfg, state, stats, rows)
    outcome = outcome_advantages(stats, cfg)[rows]
    ones = batch.mask.float()
    adv = trac.trac_advantage(outcome, terms.r_hat, ones, batch.mask, cfg.lam, cfg.clamp_eta)
    return adv, terms


@register_estimator(
    "reward_mix",
    equation="GRPO advantage of R'_i = R_i + {lam} * S_i",
    needs_teacher=True,
    summary="naive reward mixing: the teacher score added to the outcome before group normalisation",
)
def reward_mix(batch, cfg, state, stats, rows):
    terms = teacher_terms(batch, cfg, state, stats, rows)
    mixed = stats.reward.float() + cfg.lam * stats.score
    adv = _broadcast(outcome_advantages(stats, cfg, mixed)[rows], batch.mask)
    return adv, terms


@register_estimator(
    "distill",
    equation="r_it",
    needs_teacher=True,
    summary="pure on-policy distillation (sampled-token form, no outcome reward)",
)
def distill(batch, cfg, state, stats, rows):
    terms = teacher_terms(batch, cfg, state, stats, rows)
    return terms.r.clone(), terms


def estimator_table() -> str:
    """The registered estimators as a Markdown table (docs/trac.md holds exactly this)."""
    lines = ["| estimator | advantage | needs a teacher | what it is |", "| --- | --- | --- | --- |"]
    for spec in ESTIMATORS.values():
        teacher = "yes" if spec.needs_teacher else "no"
        lines.append(f"| `{spec.name}` | `{spec.render()}` | {teacher} | {spec.summary} |")
    return "\n".join(lines) + "\n"
