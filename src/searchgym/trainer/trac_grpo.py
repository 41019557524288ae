"""TRAC-GRPO on TRL: a GRPOTrainer whose advantages are (B, T) tensors from `searchgym.advantage.estimators`.

TRL computes (B,) outcome advantages inside `_generate_and_score_completions`; its loss accepts (B, T) advantages from
subclasses (`advantages.dim() == 1` is the only case it unsqueezes). We let TRL generate, score rewards and build the
batch, then score the completions with the teacher and replace `advantages`. The math lives in advantage/ so the verl
integration can reuse it unchanged. A teacher failure turns that batch into plain GRPO with a logged warning.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from trl import GRPOTrainer

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.estimators import ESTIMATORS, TRACBatch, compute_advantages
from searchgym.advantage.passrates import pass_rate_tensor
from searchgym.advantage.teacher import TeacherScorer, check_same_tokenizer
from searchgym.advantage.trac import WDState

log = logging.getLogger(__name__)


class TRACGRPOTrainer(GRPOTrainer):
    """GRPOTrainer + teacher token rewards. Extra arguments:

    teacher      a `TeacherScorer` on the student's tokenizer (None only with estimator "grpo")
    trac_config  `TRACConfig`; `estimator` picks grpo | trac | uncalibrated | reward_mix | distill
    pass_rates   {task_id: teacher pass rate} for w_P (see `load_pass_rates`); rows name their task in `task_id_key`
    """

    def __init__(
        self,
        *args: Any,
        teacher: TeacherScorer | None = None,
        trac_config: TRACConfig | None = None,
        pass_rates: dict[str, float] | None = None,
        task_id_key: str = "task_id",
        **kwargs: Any,
    ):
        self.trac_config = trac_config or TRACConfig()
        if self.trac_config.estimator not in ESTIMATORS:
            raise ValueError(
                f"unknown estimator {self.trac_config.estimator!r}; registered: {sorted(ESTIMATORS)}"
            )
        if self.trac_config.estimator != "grpo" and teacher is None:
            raise ValueError(
                f"estimator {self.trac_config.estimator!r} needs a teacher; pass teacher=HFTeacher(...)"
            )
        super().__init__(*args, **kwargs)
        if self.accelerator.num_processes != 1:
            raise NotImplementedError(
                "TRACGRPOTrainer scores whole groups in one process; run it on one process"
            )
        if self.multi_objective_aggregation != "sum_then_normalize":
            raise ValueError("TRACGRPOTrainer needs multi_objective_aggregation='sum_then_normalize'")
        if self.scale_rewards not in ("group", "none"):
            raise ValueError(
                f"TRACGRPOTrainer normalises per group; scale_rewards={self.scale_rewards!r} is unsupported"
            )
        self.trac_config.outcome_scale = self.scale_rewards == "group"
        if teacher is not None:
            check_same_tokenizer(self.processing_class, teacher.tokenizer)
        self.teacher = teacher
        self.pass_rates = pass_rates
        self.task_id_key = task_id_key
        self.wd_state = WDState(window=self.trac_config.wd_window, init=self.trac_config.wd_init)
        self.last_trac: dict[str, Any] = {}

    def _generate(self, prompts: list):
        result = super()._generate(prompts)
        # prompt ids, completion ids, tool/env mask: unpadded lists, exactly what the teacher must score
        self._trac_ids = result[:3]
        return result

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        self._trac_rewards_per_func = rewards_per_func
        self._trac_task_ids = [x.get(self.task_id_key) for x in inputs]
        return rewards_per_func

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        out = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        cfg = self.trac_config
        rpf = self._trac_rewards_per_func
        unscorable = torch.isnan(rpf).all(dim=1)
        rewards = (rpf * self.reward_weights.to(rpf.device).unsqueeze(0)).nansum(dim=1).cpu()
        mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
        n = self.num_generations if mode == "train" else self.num_generations_eval
        batch = TRACBatch(rewards=rewards, groups=n, mask=mask.cpu())
        name = cfg.estimator
        if name != "grpo" or self.teacher is not None:
            try:
                self._fill_teacher(batch, out)
            except Exception as e:  # the run never dies because the teacher did
                log.warning("teacher scoring failed, this batch trains with plain GRPO: %s", e)
                name = "grpo"
        self._metrics[mode]["trac/teacher_fallback"].append(float(name != cfg.estimator))
        advantages, diag, state = compute_advantages(name, batch, cfg, self.wd_state)
        if mode == "train":  # evaluation batches do not move the running w_D
            self.wd_state = state
        advantages = advantages * (~unscorable.cpu())[:, None]
        for key, value in diag.items():
            if isinstance(value, float):
                self._metrics[mode][f"trac/{key}"].append(value)
        trl_advantages = out["advantages"].detach().cpu()
        self.last_trac = dict(
            estimator=name, advantages=advantages, trl_advantages=trl_advantages, diagnostics=diag
        )
        out["advantages"] = advantages.to(out["advantages"].device)
        return out

    def _fill_teacher(self, batch: TRACBatch, out: dict[str, Any]) -> None:
        prompt_ids, completion_ids, env_mask = self._trac_ids
        sequences = [list(p) + list(c) for p, c in zip(prompt_ids, completion_ids, strict=True)]
        masks = [
            [0] * len(p) + (list(env_mask[i]) if env_mask is not None else [1] * len(c))
            for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True))
        ]
        scores = self.teacher.score_full(sequences, masks)
        shape = batch.mask.shape
        fields = [torch.zeros(shape) for _ in range(3)]
        for i, (p, c) in enumerate(zip(prompt_ids, completion_ids, strict=True)):
            width = min(len(c), shape[1])
            for field, values in zip(fields, scores, strict=True):
                field[i, :width] = values[i, len(p) : len(p) + width]
        batch.teacher_logp, batch.teacher_entropy, batch.teacher_max_logp = fields
        batch.behaviour_logp = self._behaviour_logp(out).cpu().float()
        batch.vocab_size = self.teacher.vocab_size
        batch.pass_rate = pass_rate_tensor(self._trac_task_ids, self.pass_rates)

    @torch.no_grad()
    def _behaviour_logp(self, out: dict[str, Any]) -> torch.Tensor:
        """log pi_old of the sampled tokens: the sampler's own log-probs when the rollout returned them, else the
        trainer's old log-probs, else one no-grad forward pass of the current (= behaviour) policy."""
        for key in ("sampling_per_token_logps", "old_per_token_logps"):
            if out.get(key) is not None:
                return torch.nan_to_num(out[key], nan=0.0)
        ids = torch.cat([out["prompt_ids"], out["completion_ids"]], dim=1)
        attn = torch.cat([out["prompt_mask"], out["completion_mask"]], dim=1)
        logps, _, _ = self._get_per_token_logps_and_entropies(
            self.model,
            ids,
            attn,
            out["completion_ids"].size(1),
            batch_size=self.args.per_device_train_batch_size,
        )
        return logps
