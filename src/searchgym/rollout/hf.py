"""Generation with a transformers causal LM: batched, left-padded, KV-cached manual decoding loop.

A manual loop (rather than `model.generate`) gives the exact sampled ids and their log-probs in one pass, stops each
row at its own stop string / eos / budget, and drops finished rows from the batch and the KV cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from searchgym.rollout.generate import (
    Generation,
    Generator,
    SamplingParams,
    StopChecker,
    eos_token_ids,
    register_generator,
)


def sample_next(
    logits: torch.Tensor, params: SamplingParams, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sampled token ids and their behaviour log-probs (log_softmax(logits / T), before top-p)."""
    greedy = params.temperature <= 0
    logp = torch.log_softmax(logits / (1.0 if greedy else params.temperature), dim=-1)
    if greedy:
        tok = logits.argmax(dim=-1)
    else:
        probs = logp.exp()
        if params.top_p < 1.0:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            # keep the smallest prefix whose mass reaches top_p (the first token is always kept)
            drop = sorted_p.cumsum(-1) - sorted_p >= params.top_p
            sorted_p = sorted_p.masked_fill(drop, 0.0)
            probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        tok = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return tok, logp.gather(-1, tok[:, None]).squeeze(-1)


@register_generator("hf")
class HFGenerator(Generator):
    def __init__(self, model, tokenizer, batch_size: int = 32):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.device = next(model.parameters()).device
        self.eos_ids = eos_token_ids(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Generation]:
        budgets = self.budgets(prompts, params, max_new_tokens)
        if any(len(p) == 0 for p in prompts):
            raise ValueError("empty prompt: every prompt needs at least one token")
        gen = torch.Generator(device="cpu").manual_seed(params.seed)
        stopper = StopChecker(self.tokenizer, params.stop, self.eos_ids)
        out: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            chunk = slice(start, start + self.batch_size)
            out += self._generate_batch(prompts[chunk], budgets[chunk], params, gen, stopper)
        return out

    @torch.no_grad()
    def _generate_batch(self, prompts, budgets, params, gen, stopper) -> list[Generation]:
        n = len(prompts)
        width = max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        tokens: list[list[int]] = [[] for _ in range(n)]
        logps: list[list[float]] = [[] for _ in range(n)]
        reasons: list[str | None] = [None if b > 0 else "length" for b in budgets]
        rows = torch.tensor(
            [i for i in range(n) if budgets[i] > 0], dtype=torch.long
        )  # batch row -> prompt index
        if len(rows) == 0:
            return [Generation([], [], "length") for _ in range(n)]
        ids, mask, positions = ids[rows], mask[rows], positions[rows]
        t0 = time.perf_counter()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True)
        cache, next_pos = out.past_key_values, positions[:, -1:] + 1
        logits = out.logits[:, -1].float()
        while True:
            tok, lp = sample_next(logits, params, gen)
            tok_list, lp_list = tok.tolist(), lp.tolist()
            self.model_seconds += time.perf_counter() - t0
            keep = []
            for r, i in enumerate(rows.tolist()):
                tokens[i].append(tok_list[r])
                logps[i].append(lp_list[r])
                reasons[i] = stopper.check(tokens[i]) or ("length" if len(tokens[i]) >= budgets[i] else None)
                if reasons[i] is None:
                    keep.append(r)
            if not keep:
                break
            if len(keep) < len(rows):  # finished episodes leave the batch and the KV cache
                sel = torch.tensor(keep, dtype=torch.long, device=self.device)
                for layer in cache.layers:
                    layer.batch_select_indices(sel)
                rows, tok, mask, next_pos = rows[keep], tok[sel], mask[sel], next_pos[sel]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
            t0 = time.perf_counter()
            out = self.model(
                input_ids=tok[:, None],
                attention_mask=mask,
                position_ids=next_pos,
                past_key_values=cache,
                use_cache=True,
            )
            cache, next_pos = out.past_key_values, next_pos + 1
            logits = out.logits[:, -1].float()
        return [Generation(tokens[i], logps[i], reasons[i]) for i in range(n)]
