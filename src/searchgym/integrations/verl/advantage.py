"""TRAC-GRPO and its baselines as verl advantage estimators, computed by `searchgym.advantage` (one implementation,
two adapters: TRL's trainer and this one).

Every estimator of `searchgym.advantage.estimators.ESTIMATORS` is registered with verl's registry as
`searchgym_<name>` (`algorithm.adv_estimator=searchgym_trac`, `searchgym_uncalibrated`, `searchgym_reward_mix`,
`searchgym_distill`, `searchgym_grpo`). verl calls an estimator with the token-level rewards, the response mask, the
GRPO group ids (`index` = the batch's `uid`) and `config` only, so what TRAC needs besides — the teacher's log-prob,
entropy and max log-prob of every response token, each rollout's success (the env's rule) and the behaviour
log-probs — is handed over by a hook around verl's own call:

- `compute_advantage(data, adv_estimator, config=...)`: verl's `ray_trainer.compute_advantage` on a `DataProto`
  whose `non_tensor_batch` holds the SearchGym agent loop's `extra_fields` (`teacher_logp`, …, `success`,
  `task_id`) and whose batch holds `old_log_probs` (else `rollout_log_probs`);
- the v1 trainer mode `searchgym_sync` (`trainer.v1.trainer_mode=searchgym_sync`): verl's sync PPO trainer whose
  `_compute_advantage` also fetches those fields from the TransferQueue for the same keys, then runs verl's own
  `_compute_advantage` (KL-in-reward, rollout correction, multi-trajectory handling unchanged), and logs TRAC's
  diagnostics as `trac/...` metrics.

Settings: `+algorithm.searchgym.trac.<TRACConfig field>=...` (lam, clip, use_wp, …; `outcome_scale` follows
`algorithm.norm_adv_by_std_in_grpo`), `+algorithm.searchgym.pass_rates=<pass_rates.json>` (teacher pass rates by
task id for w_P; unknown without). The running w_D average lives in the process that computes advantages (the
trainer), one per estimator name.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from verl.trainer.ppo.core_algos import register_adv_est

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.estimators import ESTIMATORS, TRACBatch, compute_advantages
from searchgym.advantage.passrates import load_pass_rates, pass_rate_tensor
from searchgym.advantage.trac import WDState

PREFIX = "searchgym_"
TEACHER_FIELDS = ("teacher_logp", "teacher_entropy", "teacher_max_logp")  # the agent loop's extra_fields
CONTEXT_FIELDS = (*TEACHER_FIELDS, "teacher_vocab_size", "success", "task_id")


@dataclasses.dataclass
class TeacherInputs:
    """What verl's registry call does not pass, row-aligned with its `token_level_rewards` (B, T)."""

    teacher_logp: torch.Tensor | None  # (B, T), 0 on observation and padding tokens
    teacher_entropy: torch.Tensor | None
    teacher_max_logp: torch.Tensor | None
    behaviour_logp: torch.Tensor | None  # (B, T) old_log_probs (or rollout_log_probs)
    success: torch.Tensor | None  # (B,) bool, EpisodeSummary.success
    task_ids: list[str | None]
    vocab_size: int | None


_inputs: contextvars.ContextVar[TeacherInputs | None] = contextvars.ContextVar("searchgym_trac", default=None)
_states: dict[str, WDState] = {}  # running w_D per estimator name, in the process that computes advantages
_pass_rates: dict[str, dict[str, float]] = {}
last_diagnostics: dict[str, Any] = {}  # of the latest call in this process (the trainer logs them)


def _padded(rows: Any, width: int) -> torch.Tensor | None:
    """(B, width) float tensor from per-row lists (None if any row has none: no teacher for this batch)."""
    rows = list(rows)
    if not rows or any(r is None for r in rows):
        return None
    out = torch.zeros(len(rows), width)
    for i, r in enumerate(rows):
        values = torch.as_tensor(np.asarray(r, dtype=np.float32))[:width]
        out[i, : values.shape[0]] = values
    return out


def teacher_inputs(
    columns: Mapping[str, Any], behaviour_logp: torch.Tensor | None, width: int
) -> TeacherInputs:
    """TeacherInputs from per-row columns (the agent loop's extra_fields) and the batch's behaviour log-probs."""
    n = len(next(iter(columns.values()))) if columns else 0
    success = columns.get("success")
    vocab = [v for v in columns.get("teacher_vocab_size", []) if v is not None]
    return TeacherInputs(
        *(_padded(columns[f], width) if f in columns else None for f in TEACHER_FIELDS),
        behaviour_logp=behaviour_logp,
        success=None if success is None else torch.tensor([bool(s) for s in success]),
        task_ids=[None if t is None else str(t) for t in columns.get("task_id", [None] * n)],
        vocab_size=int(vocab[0]) if vocab else None,
    )


def inputs_from(data: Any) -> TeacherInputs:
    """TeacherInputs of a verl `DataProto` (the agent-loop worker's output: extra_fields are non-tensor columns)."""
    width = data.batch["response_mask"].shape[1]
    behaviour = next(
        (data.batch[k] for k in ("old_log_probs", "rollout_log_probs") if k in data.batch.keys()), None
    )
    columns = {k: data.non_tensor_batch[k] for k in CONTEXT_FIELDS if k in data.non_tensor_batch}
    return teacher_inputs(columns, behaviour, width)


@contextlib.contextmanager
def handing_over(inputs: TeacherInputs) -> Iterator[None]:
    """Make `inputs` visible to the searchgym estimators that verl calls inside this block."""
    token = _inputs.set(inputs)
    try:
        yield
    finally:
        _inputs.reset(token)


def _section(config: Any) -> dict[str, Any]:
    """`algorithm.searchgym` of verl's config (a DictConfig, a dict or verl's AlgoConfig dataclass)."""
    if config is None:
        return {}
    section = config.get("searchgym", None) if hasattr(config, "get") else getattr(config, "searchgym", None)
    if section is None:
        return {}
    from omegaconf import DictConfig, OmegaConf

    return OmegaConf.to_container(section, resolve=True) if isinstance(section, DictConfig) else dict(section)


def trac_config(config: Any) -> TRACConfig:
    section = _section(config)
    scale = config.get("norm_adv_by_std_in_grpo", True) if hasattr(config, "get") else True
    return TRACConfig.from_dict({"outcome_scale": bool(scale), **(section.get("trac") or {})}, where="trac")


def _rates(config: Any) -> dict[str, float] | None:
    path = _section(config).get("pass_rates")
    if not path:
        return None
    if path not in _pass_rates:
        _pass_rates[path] = load_pass_rates(path)
    return _pass_rates[path]


def group_ids(index: Any, n: int) -> torch.Tensor:
    """(B,) group ids from verl's uid array, numbered in order of first appearance (no uid: one group)."""
    if index is None:
        return torch.zeros(n, dtype=torch.long)
    first: dict[Any, int] = {}
    return torch.tensor([first.setdefault(u, len(first)) for u in list(index)], dtype=torch.long)


def trac_batch(
    rewards: torch.Tensor, groups: torch.Tensor, mask: torch.Tensor, inputs: TeacherInputs | None, config: Any
) -> TRACBatch:
    """The searchgym TRACBatch of one verl batch; without teacher inputs only the outcome part is set."""
    fields: dict[str, Any] = {"rewards": rewards, "groups": groups, "mask": mask}
    if inputs is not None and inputs.teacher_logp is not None:
        fields |= {
            "teacher_logp": inputs.teacher_logp,
            "behaviour_logp": inputs.behaviour_logp,
            "teacher_entropy": inputs.teacher_entropy,
            "teacher_max_logp": inputs.teacher_max_logp,
            "pass_rate": pass_rate_tensor(inputs.task_ids, _rates(config)),
            "vocab_size": inputs.vocab_size,
        }
    if inputs is not None and inputs.success is not None and "success" in TRACBatch.__dataclass_fields__:
        fields["success"] = inputs.success
    return TRACBatch(**fields)


def make_estimator(name: str):
    """verl's estimator signature around `searchgym.advantage.compute_advantages(name, ...)`."""

    def estimator(
        token_level_rewards: torch.Tensor,
        response_mask: torch.Tensor,
        index: Any = None,
        config: Any = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = response_mask.float()
        inputs = _inputs.get()
        if inputs is not None and inputs.teacher_logp is not None and inputs.behaviour_logp is None:
            raise ValueError(
                f"{PREFIX}{name}: the batch has teacher log-probs but no old_log_probs / rollout_log_probs"
            )
        batch = trac_batch(
            token_level_rewards.sum(-1).float(), group_ids(index, mask.shape[0]), mask, inputs, config
        )
        cfg = trac_config(config)
        try:
            adv, diagnostics, state = compute_advantages(name, batch, cfg, _states.get(name))
        except ValueError as e:
            if batch.has_teacher:
                raise
            raise ValueError(
                f"{PREFIX}{name}: {e}. verl passes estimators only rewards, mask and uid: run the SearchGym agent "
                "loop with a `teacher:` and trainer.v1.trainer_mode=searchgym_sync (or call "
                "searchgym.integrations.verl.advantage.compute_advantage), docs/integrations.md"
            ) from e
        _states[name] = state
        last_diagnostics.clear()
        last_diagnostics.update(diagnostics)
        adv = adv.to(token_level_rewards.dtype) * response_mask
        return adv, adv

    estimator.__name__ = estimator.__qualname__ = f"{PREFIX}{name}"
    return estimator


ESTIMATOR_FNS = {
    f"{PREFIX}{name}": register_adv_est(f"{PREFIX}{name}")(make_estimator(name)) for name in ESTIMATORS
}


def compute_advantage(data: Any, adv_estimator: str, config: Any = None, **kwargs: Any) -> Any:
    """verl's `compute_advantage(data, adv_estimator, ..., config=config)` with `data`'s teacher fields handed to a
    searchgym estimator (any other estimator runs exactly as in verl)."""
    from verl.trainer.ppo.ray_trainer import compute_advantage as verl_compute_advantage

    with handing_over(inputs_from(data)):
        return verl_compute_advantage(data, adv_estimator=adv_estimator, config=config, **kwargs)


def metrics(prefix: str = "trac/") -> dict[str, float]:
    """The latest call's diagnostics as flat floats (the per-group AUC list is left out)."""
    return {
        prefix + k: float(v)
        for k, v in last_diagnostics.items()
        if isinstance(v, (int, float)) and not (isinstance(v, float) and math.isnan(v))
    }


def _tq_columns(rows: Any, n: int) -> dict[str, list[Any]]:
    """The context fields of `n` TransferQueue rows' `extra_fields` dicts."""
    dicts = [dict(r) if r is not None else {} for r in (list(rows) if rows is not None else [None] * n)]
    return {k: [d.get(k) for d in dicts] for k in CONTEXT_FIELDS if any(k in d for d in dicts)}


try:  # the v1 trainer (verl's default) needs TransferQueue; without it only compute_advantage above is there
    import transfer_queue as tq
    from verl.trainer.ppo.v1.trainer_base import register_trainer
    from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
except ImportError:  # pragma: no cover - depends on the install
    SearchGymTrainer = None
else:

    @register_trainer(f"{PREFIX}sync")
    class SearchGymTrainer(PPOTrainerSync):
        """verl's sync PPO trainer; for a searchgym estimator, `_compute_advantage` hands the teacher fields of the
        same TransferQueue rows to it and logs TRAC's diagnostics."""

        def _compute_advantage(self, batch: Any, metrics_out: dict) -> Any:
            if not str(self.config.algorithm.adv_estimator).startswith(PREFIX):
                return super()._compute_advantage(batch, metrics_out)
            data = tq.kv_batch_get(
                keys=batch.keys,
                partition_id=batch.partition_id,
                select_fields=["extra_fields", "response_mask", "old_log_probs", "rollout_log_probs"],
            )
            padded = data.to_padded_tensor() if hasattr(data, "to_padded_tensor") else data
            width = padded["response_mask"].shape[1]
            behaviour = next(
                (padded[k] for k in ("old_log_probs", "rollout_log_probs") if k in padded.keys()), None
            )
            extra = data["extra_fields"] if "extra_fields" in data.keys() else None
            inputs = teacher_inputs(_tq_columns(extra, len(batch.keys)), behaviour, width)
            with handing_over(inputs):
                out = super()._compute_advantage(batch, metrics_out)
            metrics_out.update(metrics())
            return out
