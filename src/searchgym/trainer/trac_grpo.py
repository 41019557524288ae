"""TRAC-GRPO on TRL: a GRPOTrainer whose advantages are (B, T) tensors from `searchgym.advantage.estimators`.

One TRL hook is overridden, `_generate_and_score_completions`: TRL generates (through the rollout_func), merges the
rollout's extra fields into `inputs`, scores rewards and builds the batch; we then read the token ids and masks from
its output and each rollout's `env_reward`, `success` and `task_id` from `inputs`, score the completions with the
teacher on this process, gather the per-rollout statistics of all processes (groups may span processes), and replace
`advantages` (TRL's loss accepts (B, T) advantages; only `dim() == 1` is unsqueezed). The math lives in advantage/,
so 1 process, N processes and verl share it. A transient teacher failure (`TeacherUnavailable`) on any process turns
the batch into plain GRPO on every process, with a logged warning; `trac/teacher_fallback_share` is the share of
training batches so far that fell back, and once `trac_config.teacher_fallback_min_batches` batches have trained a
share above `trac_config.max_teacher_fallback_share` stops the run (`TeacherFallbackExceeded`). A misconfigured
teacher (`TeacherConfigError`, HTTP 4xx) stops it at once: its probe runs when the trainer is built.

`last_trac` (a `TRACStep`) is the documented record of the latest batch: what the loss trains on.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import torch
from trl import GRPOTrainer

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.estimators import (
    RolloutStats,
    TeacherTerms,
    TRACBatch,
    compute,
    estimator_spec,
    outcome_advantages,
    rollout_stats,
)
from searchgym.advantage.passrates import pass_rate_tensor
from searchgym.advantage.teacher import TeacherScorer, TeacherUnavailable, check_same_tokenizer
from searchgym.advantage.trac import WDState
from searchgym.errors import SearchGymError

log = logging.getLogger(__name__)


class TeacherFallbackExceeded(SearchGymError, RuntimeError):
    """Too many training batches fell back to plain GRPO: the run would silently be a GRPO run."""


@dataclasses.dataclass
class TRACStep:
    """One generation batch as this process trained on it (B local rollouts)."""

    step: int  # the optimizer step these rollouts train (1-based)
    estimator: str  # the estimator used ("grpo" after a teacher fallback)
    advantages: torch.Tensor  # (B, T) what TRL's loss sees
    trl_advantages: torch.Tensor  # (B,) TRL's own group advantages
    diagnostics: dict
    terms: TeacherTerms | None  # the TRAC factors (None without teacher scores)
    stats: RolloutStats  # every process's rollouts of these groups
    rows: slice  # this process's rows in `stats`
    num_generations: int
    inputs: list[dict[str, Any]]  # the dataset rows with the rollout's extra fields merged in
    completion_ids: list[list[int]]  # unpadded
    env_mask: list[list[int]]  # 1 = model token (TRL's tool_mask), per completion token
    process_index: int = 0


class TRACGRPOTrainer(GRPOTrainer):
    """GRPOTrainer + teacher token rewards. Extra arguments:

    teacher      a `TeacherScorer` on the student's tokenizer (None only for estimators without needs_teacher)
    estimator    a name in `searchgym.advantage.estimators.ESTIMATORS` (grpo | trac | uncalibrated | ...)
    trac_config  `TRACConfig`, the math switches (its outcome_scale follows TRL's scale_rewards; a copy is kept)
    pass_rates   {task_id: teacher pass rate} for w_P (see `load_pass_rates`)
    on_batch     called with each training batch's `TRACStep` on every process (e.g. `RolloutLog`)

    The rollout_func returns, as extra fields per rollout: `env_reward` (the outcome R_i; TRL's reward_funcs must
    pass it through unchanged, e.g. `rollout_func.env_reward`), `success` (bool, the env's rule) and `task_id`.
    """

    def __init__(
        self,
        *args: Any,
        teacher: TeacherScorer | None = None,
        estimator: str = "trac",
        trac_config: TRACConfig | None = None,
        pass_rates: dict[str, float] | None = None,
        on_batch: Callable[[TRACStep], None] | None = None,
        **kwargs: Any,
    ):
        spec = estimator_spec(estimator)
        if spec.needs_teacher and teacher is None:
            raise ValueError(f"estimator {estimator!r} needs a teacher; pass teacher=HFTeacher(...)")
        super().__init__(*args, **kwargs)
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("TRACGRPOTrainer needs multi_objective_aggregation='sum_then_normalize'")
        if self.scale_rewards not in ("group", "none"):
            raise ValueError(
                f"TRACGRPOTrainer normalises per group; scale_rewards={self.scale_rewards!r} is unsupported"
            )
        if teacher is not None:
            check_same_tokenizer(self.processing_class, teacher.tokenizer)
            teacher.check()  # a misconfigured teacher (HTTP 4xx) stops here, before step 1
        self.estimator = estimator
        self.trac_config = dataclasses.replace(
            trac_config or TRACConfig(), outcome_scale=self.scale_rewards == "group"
        )
        self.teacher = teacher
        self.pass_rates = pass_rates
        self.on_batch = on_batch
        self.wd_state = WDState(window=self.trac_config.wd_window, init=self.trac_config.wd_init)
        self.last_trac: TRACStep | None = None
        self.teacher_batches = 0  # training batches scored with a teacher configured
        self.teacher_fallbacks = 0  # of those, the ones that fell back to plain GRPO

    @property
    def teacher_fallback_share(self) -> float:
        return self.teacher_fallbacks / self.teacher_batches if self.teacher_batches else 0.0

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        n = self.num_generations if mode == "train" else self.num_generations_eval
        acc, cfg = self.accelerator, self.trac_config
        completion_ids, env_mask = _unpadded_completions(out)
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        b = mask.shape[0]
        offset = acc.process_index * b
        group = (offset + torch.arange(b)) // n  # TRL's layout: num_generations consecutive rows per prompt
        batch = TRACBatch(
            rewards=_field(inputs, "env_reward", float),
            success=_field(inputs, "success", bool),
            groups=group,
            mask=mask.cpu(),
        )
        name = self.estimator
        ok = True
        if self.teacher is not None:
            try:
                self._fill_teacher(batch, out, inputs, completion_ids, env_mask)
            except TeacherUnavailable as e:  # the run never dies because the teacher is down
                log.warning("teacher scoring failed, this batch trains with plain GRPO: %s", e)
                ok = False
        if not _all(acc, ok):
            name, batch.teacher_logp, batch.behaviour_logp = "grpo", None, None
        fell_back = name != self.estimator
        self._metrics[mode]["trac/teacher_fallback"].append(float(fell_back))
        if mode == "train" and self.teacher is not None:
            self._count_fallback(fell_back)
        stats = _gather_stats(acc, rollout_stats(batch, cfg, group=group))
        _check_groups(acc, inputs, n)
        rows = slice(offset, offset + b)
        result = compute(name, batch, cfg, self.wd_state, stats, rows)
        if mode == "train":  # evaluation batches do not move the running w_D
            self.wd_state = result.state
        trl_advantages = out["advantages"].detach().float().cpu()
        if not torch.allclose(outcome_advantages(stats, cfg)[rows], trl_advantages, rtol=1e-3, atol=1e-3):
            raise ValueError(
                "TRL's rewards differ from the rollouts' env_reward: TRACGRPOTrainer computes the outcome advantage "
                "from `env_reward`, so reward_funcs must return it unchanged (searchgym.trainer.rollout_func.env_reward)"
            )
        for key, value in result.diagnostics.items():
            if isinstance(value, float):
                self._metrics[mode][f"trac/{key}"].append(value)
        self.last_trac = TRACStep(
            step=self.state.global_step + 1,
            estimator=name,
            advantages=result.advantages,
            trl_advantages=trl_advantages,
            diagnostics=result.diagnostics,
            terms=result.terms,
            stats=stats,
            rows=rows,
            num_generations=n,
            inputs=inputs,
            completion_ids=completion_ids,
            env_mask=env_mask,
            process_index=acc.process_index,
        )
        if mode == "train" and self.on_batch is not None:
            self.on_batch(self.last_trac)
        out["advantages"] = result.advantages.to(out["advantages"].device)
        return out

    def _count_fallback(self, fell_back: bool) -> None:
        self.teacher_batches += 1
        self.teacher_fallbacks += int(fell_back)
        share, cfg = self.teacher_fallback_share, self.trac_config
        self._metrics["train"]["trac/teacher_fallback_share"].append(share)
        if (
            self.teacher_batches >= cfg.teacher_fallback_min_batches
            and share > cfg.max_teacher_fallback_share
        ):
            raise TeacherFallbackExceeded(
                f"{self.teacher_fallbacks} of {self.teacher_batches} training batches ({share:.0%}) fell back to "
                f"plain GRPO because the teacher was unavailable, above trac.max_teacher_fallback_share="
                f"{cfg.max_teacher_fallback_share}; fix the teacher server (see the warnings above) or raise "
                "trac.max_teacher_fallback_share"
            )

    def _fill_teacher(
        self,
        batch: TRACBatch,
        out: dict[str, Any],
        inputs: list[dict[str, Any]],
        completion_ids: list[list[int]],
        env_mask: list[list[int]],
    ) -> None:
        prompt_ids = [
            row[m.bool()].tolist() for row, m in zip(out["prompt_ids"], out["prompt_mask"], strict=True)
        ]
        sequences = [p + c for p, c in zip(prompt_ids, completion_ids, strict=True)]
        masks = [[0] * len(p) + m for p, m in zip(prompt_ids, env_mask, strict=True)]
        scores = self.teacher.score_full(sequences, masks)
        shape = batch.mask.shape
        fields = [torch.zeros(shape) for _ in range(3)]
        for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
            width = min(len(c), shape[1])
            for field, values in zip(fields, scores, strict=True):
                field[i, :width] = values[i, len(p) : len(p) + width]
        batch.teacher_logp, batch.teacher_entropy, batch.teacher_max_logp = fields
        batch.behaviour_logp = _behaviour_logp(out).cpu().float()
        batch.vocab_size = self.teacher.vocab_size
        batch.pass_rate = pass_rate_tensor([x.get("task_id") for x in inputs], self.pass_rates)


def _unpadded_completions(out: dict[str, Any]) -> tuple[list[list[int]], list[list[int]]]:
    """Completion token ids and their env/tool mask (1 = model token), without TRL's right padding."""
    lengths = out["completion_mask"].sum(1).tolist()
    ids = [row[:n].tolist() for row, n in zip(out["completion_ids"], lengths, strict=True)]
    tool = out.get("tool_mask")
    masks = [tool[i, :n].tolist() if tool is not None else [1] * n for i, n in enumerate(lengths)]
    return ids, masks


def _field(inputs: list[dict[str, Any]], key: str, kind: type) -> torch.Tensor:
    if not inputs or key not in inputs[0]:
        raise ValueError(
            f"TRACGRPOTrainer reads each rollout's {key!r} from the inputs: return it from rollout_func as an extra "
            "field (one value per rollout), as searchgym.trainer.rollout_func.SearchRolloutFunc does"
        )
    dtype = torch.bool if kind is bool else torch.float32
    return torch.tensor([kind(x[key]) for x in inputs], dtype=dtype)


def _behaviour_logp(out: dict[str, Any]) -> torch.Tensor:
    """log pi_old of the sampled tokens: the sampler's own log-probs (the rollout's `logprobs`), else TRL's old
    log-probs."""
    for key in ("sampling_per_token_logps", "old_per_token_logps"):
        if out.get(key) is not None:
            return torch.nan_to_num(out[key], nan=0.0)
    raise ValueError(
        "TRAC needs behaviour log-probs: the rollout_func must return `logprobs` for every token"
    )


def _all(accelerator: Any, flag: bool) -> bool:
    if accelerator.num_processes == 1:
        return flag
    t = torch.tensor([int(flag)], device=accelerator.device)
    return bool(accelerator.gather(t).min().item())


def _gather_stats(accelerator: Any, local: RolloutStats) -> RolloutStats:
    """Every process's per-rollout statistics, in process order (TRL gives process k the k-th slice)."""
    if accelerator.num_processes == 1:
        return local
    return RolloutStats.from_tensor(accelerator.gather(local.to_tensor().to(accelerator.device)))


def _check_groups(accelerator: Any, inputs: list[dict[str, Any]], n: int) -> None:
    """The group layout assumed above: the `num_generations` consecutive rows of a group play one task."""
    if not inputs or "task_id" not in inputs[0]:
        return
    ids = [x["task_id"] for x in inputs]
    if accelerator.num_processes > 1:
        from accelerate.utils import gather_object

        ids = gather_object(ids)
    bad = [g for g in range(0, len(ids), n) if len(set(ids[g : g + n])) != 1]
    if bad:
        raise ValueError(
            f"rows {bad[0]}..{bad[0] + n - 1} of the generation batch play different tasks; TRL must give every "
            "group num_generations consecutive rows (keep shuffle off the rows inside a generation batch)"
        )
