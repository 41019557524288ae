"""`OUTPUT_DIR/rollouts.jsonl`: a bounded sample of the training rollouts, for the trajectory viewer.

At every logging step (`step % grpo.logging_steps == 0`) the main process appends `log_rollouts` of its rollouts
(a seeded sample), one JSON object per rollout:

    step, task_id, group, sample, question, gold [..], level, type, reward, success,
    advantage     mean of the trained advantage over the rollout's model tokens
    tokens        decoded text of each completion token (they join to the decoded completion; a character split
                  over byte-level tokens sits on the token that completes it);  token_ids;  env_mask (1 = model)
    steps         the env's StepInfo of every turn, as dicts;  episode  the EpisodeSummary as a dict
    trac          null, or {r_hat, omega, w_c: per completion token; w_p, w_d: floats; group_success: [bools]}

The file never grows past `max_bytes`: when an append would pass it, every second logged step of the older half is
dropped (the file is rewritten atomically) until the new rows fit. Each logged step keeps all its rows or none.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

from searchgym.io import atomic_write_text
from searchgym.trainer.trac_grpo import TRACStep

ROLLOUTS_FILE = "rollouts.jsonl"


def _r(values: Any) -> Any:
    """Floats rounded to 5 decimals: the file is for reading, not for recomputing."""
    if isinstance(values, list):
        return [round(float(v), 5) for v in values]
    return None if values is None else round(float(values), 5)


def token_texts(tokenizer: Any, ids: list[int]) -> list[str]:
    """The text of each token, such that the texts join to the decoded sequence: a character split over several
    byte-level tokens belongs to the token that completes it (the ones before it get "")."""
    out, start = [], 0
    for i in range(len(ids)):
        text = tokenizer.decode(ids[start : i + 1], skip_special_tokens=False)
        if text.endswith("\ufffd") and i + 1 < len(ids):  # an incomplete UTF-8 character: wait for the rest
            out.append("")
            continue
        out.append(text)
        start = i + 1
    return out


def rollout_records(rec: TRACStep, rows: list[int], tokenizer: Any) -> list[dict[str, Any]]:
    """The rollouts.jsonl objects of the local rows `rows` of one batch."""
    offset, n = rec.rows.start, rec.num_generations
    out = []
    for i in rows:
        x, ids, env = rec.inputs[i], rec.completion_ids[i], rec.env_mask[i]
        width = len(ids)
        adv = rec.advantages[i, :width]
        model = [a for a, m in zip(adv.tolist(), env, strict=True) if m]
        group = (offset + i) // n
        trac = None
        t = rec.terms
        if t is not None:
            trac = {
                "r_hat": _r(t.r_hat[i, :width].tolist()),
                "omega": _r(t.omega[i, :width].tolist()),
                "w_c": _r(t.w_c[i, :width].tolist()) if t.w_c is not None else None,
                "w_p": _r(t.w_p[i].item()) if t.w_p is not None else None,
                "w_d": _r(t.w_d[i].item()) if t.w_d is not None else None,
                "group_success": rec.stats.success[rec.stats.group == group].tolist(),
            }
        out.append(
            {
                "step": rec.step,
                "task_id": x.get("task_id"),
                "group": group,
                "sample": (offset + i) % n,
                "question": x.get("question"),
                "gold": list(x.get("gold") or []),
                "level": x.get("level"),
                "type": x.get("type"),
                "reward": _r(x.get("env_reward")),
                "success": bool(x.get("success")),
                "advantage": _r(sum(model) / len(model) if model else adv.mean().item() if width else 0.0),
                "tokens": token_texts(tokenizer, ids),
                "token_ids": ids,
                "env_mask": env,
                "steps": list(x.get("env_steps") or []),
                "episode": x.get("env_info") or None,
                "trac": trac,
            }
        )
    return out


class RolloutLog:
    """The `on_batch` hook of `TRACGRPOTrainer` that writes rollouts.jsonl (main process only)."""

    def __init__(
        self,
        path: Path,
        tokenizer: Any,
        per_step: int = 4,
        logging_steps: int = 1,
        max_bytes: int = 64 * 2**20,
        seed: int = 0,
    ):
        self.path, self.tokenizer = Path(path), tokenizer
        self.per_step, self.logging_steps, self.max_bytes, self.seed = (
            per_step,
            logging_steps,
            max_bytes,
            seed,
        )

    def __call__(self, rec: TRACStep) -> None:
        if rec.process_index != 0 or self.per_step < 1 or rec.step % self.logging_steps:
            return
        b = len(rec.inputs)
        rows = sorted(random.Random(f"{self.seed}/{rec.step}").sample(range(b), min(self.per_step, b)))
        lines = [json.dumps(r, ensure_ascii=False) + "\n" for r in rollout_records(rec, rows, self.tokenizer)]
        self.append(lines)

    def append(self, lines: list[str]) -> None:
        """Append one step's lines, thinning older steps first if the file would pass `max_bytes`."""
        size = sum(len(x.encode("utf-8")) for x in lines)
        if size > self.max_bytes:
            return  # one step alone does not fit: logging it would break the cap
        current = self.path.stat().st_size if self.path.exists() else 0
        if current + size > self.max_bytes:
            self._thin(self.max_bytes - size)
        with open(self.path, "a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            os.fsync(f.fileno())

    def _thin(self, budget: int) -> None:
        by_step: dict[int, list[str]] = {}
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                try:
                    by_step.setdefault(json.loads(line)["step"], []).append(line)
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a line cut by a kill
        steps = sorted(by_step)

        def total() -> int:
            return sum(len(x.encode("utf-8")) for s in steps for x in by_step[s])

        while steps and total() > budget:
            old = steps[: max(1, len(steps) // 2)]
            drop = set(old[1::2]) if len(old) > 1 else {old[0]}
            steps = [s for s in steps if s not in drop]
        atomic_write_text(self.path, "".join(x for s in steps for x in by_step[s]))
