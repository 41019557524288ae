"""Configs of the advantage stage (no torch here, so training configs can hold them):

`TRACConfig`     every switch of the TRAC-GRPO math (the estimator itself is chosen by the training config)
`TeacherConfig`  which teacher scores the student's tokens: a backend from `advantage.teacher.TEACHERS`, its
                 model or endpoint, and an optional deliberate corruption for robustness experiments
"""

from __future__ import annotations

import dataclasses
from typing import Literal

from searchgym.config import ConfigError, YamlConfig


@dataclasses.dataclass
class TRACConfig(YamlConfig):
    """Every factor of TRAC-GRPO is a switch here; defaults are [ours] unless docs/trac.md says otherwise."""

    lam: float = 0.1  # lambda: weight of the teacher term (sweep 0.05-0.5)
    clip: float = 5.0  # c: raw token reward clipped to [-c, c]
    normalize: bool = True  # group normalisation of the token reward over valid tokens
    norm_eps: float = 1e-6
    outcome_scale: bool = (
        True  # divide A_i by the group std (TRL scale_rewards="group"; the TRL trainer sets it)
    )
    outcome_eps: float = 1e-4  # same epsilon as TRL, so estimator "grpo" equals TRL's advantages
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
    # a run whose share of training batches that fell back to GRPO (teacher timeouts, connection errors, 5xx)
    # exceeds this, once it has trained teacher_fallback_min_batches batches, stops (docs/trac.md)
    max_teacher_fallback_share: float = 0.1
    teacher_fallback_min_batches: int = 10

    def __post_init__(self) -> None:
        positive = {
            "clip": self.clip,
            "wc_tau": self.wc_tau,
            "wd_window": self.wd_window,
            "teacher_fallback_min_batches": self.teacher_fallback_min_batches,
        }
        bad = [f"{k}={v}" for k, v in positive.items() if not v > 0]
        bad += [
            f"{k}={v}"
            for k, v in {
                "wd_init": self.wd_init,
                "wp_unknown": self.wp_unknown,
                "max_teacher_fallback_share": self.max_teacher_fallback_share,
            }.items()
            if not 0 <= v <= 1
        ]
        if self.clamp_eta is not None and self.clamp_eta < 0:
            bad.append(f"clamp_eta={self.clamp_eta}")
        if bad:
            raise ConfigError(
                f"TRACConfig: {', '.join(bad)} out of range (clip, wc_tau, wd_window, teacher_fallback_min_batches "
                "> 0; wd_init, wp_unknown, max_teacher_fallback_share in [0, 1]; clamp_eta >= 0 or null)"
            )


@dataclasses.dataclass
class CorruptionConfig(YamlConfig):
    """Experiments only: damage the teacher's log-probs (searchgym.advantage.teacher.CorruptedTeacher). Of the scored
    positions of each batch, a share `shuffle` is swapped among themselves and a disjoint share `invert` mirrored
    around the batch mean. Both 0 = the teacher as it is."""

    shuffle: float = 0.0
    invert: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not (0 <= self.shuffle and 0 <= self.invert and self.shuffle + self.invert <= 1):
            raise ConfigError(
                f"teacher.corruption: shuffle={self.shuffle}, invert={self.invert}; each must be >= 0 and their "
                "sum <= 1"
            )

    @property
    def enabled(self) -> bool:
        return self.shuffle > 0 or self.invert > 0


@dataclasses.dataclass
class TeacherConfig(YamlConfig):
    """The teacher backend, by name in `searchgym.advantage.teacher.TEACHERS` ("" = no teacher)."""

    kind: str = (
        ""  # "" | "hf" (a local model) | "openai" (an OpenAI-compatible server with prompt_logprobs: vLLM)
    )
    path: str = ""  # hf: the model directory; openai: a local copy of its tokenizer ("" = the student's)
    endpoint: str = ""  # openai: the server's base URL, e.g. http://127.0.0.1:8000
    model: str = ""  # openai: the served model name
    top_k: int = (
        20  # openai: prompt_logprobs per position (vLLM refuses more than its --max-logprobs, default 20)
    )
    api_key_env: str = (
        ""  # openai: name of the environment variable holding the API key (never the key itself)
    )
    batch_size: int = 8  # sequences per forward pass (hf) or per request (openai)
    dtype: str = "float32"  # hf: float32 on CPU, bfloat16 on GPUs
    timeout: float = 60.0  # openai: seconds per request
    tail: str = "uniform"  # openai: top-k entropy estimate, "uniform" (upper bound) | "lumped" (lower bound)
    corruption: CorruptionConfig = dataclasses.field(default_factory=CorruptionConfig)

    def __post_init__(self) -> None:
        need = {"hf": ("path",), "openai": ("endpoint", "model")}.get(self.kind, ())
        missing = [f"teacher.{k}" for k in need if not getattr(self, k)]
        if missing:
            raise ConfigError(f"teacher.kind={self.kind!r} needs {' and '.join(missing)}")
        if self.top_k < 1 or self.batch_size < 1 or not self.timeout > 0:
            raise ConfigError(
                f"teacher: top_k={self.top_k}, batch_size={self.batch_size}, timeout={self.timeout}; "
                "each must be >= 1 (timeout > 0)"
            )
        if self.tail not in ("uniform", "lumped"):
            raise ConfigError(
                f"teacher.tail={self.tail!r}: must be 'uniform' (upper bound) or 'lumped' (lower)"
            )
        if self.api_key_env and not self.api_key_env.replace("_", "").isalnum():
            raise ConfigError(f"teacher.api_key_env={self.api_key_env!r} is not an environment variable name")
