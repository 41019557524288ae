"""`TRACConfig`: every switch of TRAC-GRPO (no torch here, so training configs can hold it)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from searchgym.config import ConfigError, YamlConfig


@dataclasses.dataclass
class TRACConfig(YamlConfig):
    """Every factor of TRAC-GRPO is a switch here; defaults are [ours] unless docs/trac.md says otherwise."""

    estimator: str = "trac"  # grpo | trac | uncalibrated | reward_mix | distill (see estimators.ESTIMATORS)
    lam: float = 0.1  # lambda: weight of the teacher term (sweep 0.05-0.5)
    clip: float = 5.0  # c: raw token reward clipped to [-c, c]
    normalize: bool = True  # group normalisation of the token reward over valid tokens
    norm_eps: float = 1e-6
    outcome_scale: bool = True  # divide A_i by the group std (TRL scale_rewards="group")
    outcome_eps: float = 1e-4  # same epsilon as TRL, so estimator "grpo" equals TRL's advantages
    success_threshold: float = 0.5  # R_i >= threshold counts as a correct rollout (w_D, relative w_P)
    use_wp: bool = True
    wp_variant: Literal["pass_rate", "hard_gate", "relative"] = "pass_rate"
    wp_tau: float = 0.5  # hard gate: w_P = 1 if pass rate >= tau
    wp_unknown: float = 1.0  # w_P when the prompt has no cached teacher pass rate
    use_wd: bool = True
    wd_variant: Literal["auc", "agreement"] = "auc"
    wd_window: int = 32  # running average over this many recent mixed groups
    wd_init: float = 0.5  # running average before any mixed group was seen
    use_wc: bool = True
    wc_variant: Literal["entropy", "exp", "max_prob"] = "entropy"
    wc_tau: float = 1.0  # temperature of the "exp" variant
    clamp_eta: float | None = None  # sign-preserving clamp of the teacher term to +-eta*|A_i|; None = off

    def __post_init__(self) -> None:
        positive = {"clip": self.clip, "wc_tau": self.wc_tau, "wd_window": self.wd_window}
        bad = [f"{k}={v}" for k, v in positive.items() if not v > 0]
        bad += [
            f"{k}={v}"
            for k, v in {"wd_init": self.wd_init, "wp_unknown": self.wp_unknown}.items()
            if not 0 <= v <= 1
        ]
        if self.clamp_eta is not None and self.clamp_eta < 0:
            bad.append(f"clamp_eta={self.clamp_eta}")
        if bad:
            raise ConfigError(
                f"TRACConfig: {', '.join(bad)} out of range (clip, wc_tau, wd_window > 0; wd_init, wp_unknown in "
                "[0, 1]; clamp_eta >= 0 or null)"
            )
