"""Generation through any OpenAI-compatible completions server (vLLM, SGLang) with token-id prompts.

Each prompt is one `POST /v1/completions` request with `prompt` as a list of token ids, `logprobs: 0` (the sampled
token's log-prob) and the vLLM extensions `return_tokens_as_token_ids` / `return_token_ids` so the exact generated
ids come back (text is never re-tokenised). Requests run concurrently in a thread pool, each with a timeout and
retries with exponential backoff on connection errors, 408, 429 and 5xx (`searchgym.http.post_json`).

Behaviour log-probs: start vLLM with `--logprobs-mode processed_logprobs` so its log-probs are computed after
temperature scaling, matching `HFGenerator` and TRL's recomputation. vLLM's default (`raw_logprobs`) returns
log_softmax(logits) whatever the temperature (off by up to 1.65 nats at T = 0.7), so the first sampled call at a
temperature other than 1 probes the server once (`check_logprobs_mode`) and refuses a server in raw mode.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from searchgym.errors import SearchGymError
from searchgym.http import HTTPFailure, Retry, completions_url, post_json
from searchgym.rollout.generate import (
    Generation,
    Generator,
    SamplingParams,
    eos_token_ids,
    register_generator,
)


class GenerationServerError(SearchGymError, RuntimeError):
    """The server failed or answered in a shape we cannot read; the message names the server and the reason."""


def parse_choice(choice: dict[str, Any], eos_ids: set[int]) -> Generation:
    """Token ids and log-probs from one completions choice (vLLM `token_ids` or `token_id:N` tokens)."""
    lp = choice.get("logprobs") or {}
    token_logprobs = lp.get("token_logprobs")
    ids = choice.get("token_ids")
    if ids is None:
        tokens = lp.get("tokens") or []
        if not all(isinstance(t, str) and t.startswith("token_id:") for t in tokens):
            raise GenerationServerError(
                "the server returned token strings, not ids; use a server that supports "
                "`return_tokens_as_token_ids` or `return_token_ids` (vLLM, SGLang) so tokens are never re-tokenised"
            )
        ids = [int(t.split(":", 1)[1]) for t in tokens]
    if token_logprobs is None or len(token_logprobs) != len(ids):
        raise GenerationServerError(
            "the server returned no per-token logprobs; it must support `logprobs: 0`"
        )
    reason = choice.get("finish_reason") or "length"
    if reason == "stop" and ids and ids[-1] in eos_ids:
        reason = "eos"
    return Generation(
        token_ids=[int(i) for i in ids],
        logprobs=[float("nan") if x is None else float(x) for x in token_logprobs],
        finish_reason=reason if reason in ("stop", "eos", "length") else "length",
    )


@register_generator("openai")
class OpenAIGenerator(Generator):
    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        eos_ids: Sequence[int] = (),
        concurrency: int = 16,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        api_key: str | None = None,
        tokenizer: Any = None,
    ):
        """`model`: the served model's name (None: the first model of `GET /v1/models`, as TRL's VLLMClient takes).
        `tokenizer` (optional): the served model's tokenizer, whose eos ids are added to `eos_ids`."""
        self.url = completions_url(base_url)
        self.eos_ids = set(eos_ids) | (set(eos_token_ids(tokenizer)) if tokenizer is not None else set())
        self.retry = Retry(retries, backoff)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            timeout=timeout, headers=headers, limits=httpx.Limits(max_connections=concurrency)
        )
        self.pool = ThreadPoolExecutor(max_workers=concurrency)
        self.logprobs_checked = False
        self._max_context: int | None = None
        self._context_read = False
        self.model = model if model is not None else self.served_model()

    def _models(self) -> list[Any]:
        """The `data` list of the server's `GET /v1/models` (raises httpx / JSON errors)."""
        data = self.client.get(self.url.removesuffix("/completions") + "/models").json().get("data")
        return data if isinstance(data, list) else []

    def served_model(self) -> str:
        """The first model id of the server's `GET /v1/models`; GenerationServerError if it cannot be read."""
        try:
            return str(self._models()[0]["id"])
        except (httpx.HTTPError, ValueError, AttributeError, LookupError, TypeError) as e:
            raise GenerationServerError(
                f"{self.url.removesuffix('/completions')}/models: cannot read the served model's name "
                f"({type(e).__name__}: {e}); is an OpenAI-compatible server (vllm serve) running there?"
            ) from e

    @property
    def max_context(self) -> int | None:  # type: ignore[override]
        """The served model's `max_model_len` from `GET /v1/models` (vLLM reports it), read once; None if absent."""
        if not self._context_read:
            self._context_read = True
            try:
                data = self._models()
            except (httpx.HTTPError, ValueError, AttributeError):
                return None  # no models endpoint: generation reports a dead server itself
            for entry in data:
                if isinstance(entry, dict) and entry.get("id") == self.model:
                    value = entry.get("max_model_len")
                    self._max_context = value if isinstance(value, int) and value > 0 else None
        return self._max_context

    def check_logprobs_mode(self, prompt: Sequence[int], temperature: float) -> None:
        """Raise GenerationServerError if the server's log-probs ignore the temperature (vLLM `raw_logprobs`).

        One token is asked at T = 1 and at `temperature` with the top-2 log-probs: after temperature scaling the gap
        between the two best tokens is gap(T=1) / T, without it the gap is unchanged."""
        self.logprobs_checked = True
        gaps = []
        for t in (1.0, temperature):
            body = {"model": self.model, "prompt": list(prompt), "max_tokens": 1, "temperature": t, "top_p": 1.0,
                    "seed": 0, "logprobs": 2, "return_tokens_as_token_ids": True}  # fmt: skip
            top = (self._post(body).get("logprobs") or {}).get("top_logprobs") or [None]
            if not isinstance(top[0], dict) or len(top[0]) < 2:
                return  # a server without top log-probs: nothing to compare
            best = sorted(top[0].values(), reverse=True)
            gaps.append(best[0] - best[1])
        if gaps[0] < 1e-3:
            return  # a tie at the top: the probe cannot tell
        ratio = gaps[1] / gaps[0]
        if abs(ratio - 1.0) < abs(ratio - 1.0 / temperature):
            raise GenerationServerError(
                f"{self.url}: the server's log-probs ignore the sampling temperature ({temperature}); behaviour "
                "log-probs and importance ratios would be wrong. Restart vLLM with --logprobs-mode processed_logprobs"
            )

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            return post_json(self.client, self.url, body, self.retry, parse=lambda data: data["choices"][0])
        except HTTPFailure as e:
            raise GenerationServerError(str(e)) from e

    def _one(self, prompt: Sequence[int], budget: int, params: SamplingParams, seed: int) -> Generation:
        if budget <= 0:
            return Generation([], [], "length")
        body = {
            "model": self.model,
            "prompt": list(prompt),
            "max_tokens": budget,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stop": list(params.stop) or None,
            "seed": seed,
            "logprobs": 0,
            "return_tokens_as_token_ids": True,
            "return_token_ids": True,
            "include_stop_str_in_output": True,
            "skip_special_tokens": False,
        }
        return parse_choice(self._post(body), self.eos_ids)

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Generation]:
        budgets = self.budgets(prompts, params, max_new_tokens)
        if not self.logprobs_checked and prompts and params.temperature not in (0.0, 1.0):
            self.check_logprobs_mode(prompts[0], params.temperature)
        t0 = time.perf_counter()
        # distinct, reproducible seed per prompt of the call
        futures = [
            self.pool.submit(self._one, p, b, params, params.seed + i)
            for i, (p, b) in enumerate(zip(prompts, budgets, strict=True))
        ]
        out = [f.result() for f in futures]
        self.model_seconds += time.perf_counter() - t0
        return out

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()
