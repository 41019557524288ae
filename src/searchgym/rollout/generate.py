"""One interface for every generation backend: token ids in, exact token ids and behaviour log-probs out.

The behaviour log-prob of a sampled token is `log_softmax(logits / temperature)` at that token (temperature 1 for
greedy decoding), computed before top-p filtering: the quantity TRL recomputes for importance sampling.

Backends register by name and are built with `make_generator(kind, **kwargs)`, used by the trainer and eval:

    make_generator("hf", model=model, tokenizer=tok)                        # rollout.hf.HFGenerator
    make_generator("openai", base_url=url, model="served-name", tokenizer=tok)  # rollout.openai.OpenAIGenerator
    make_generator("vllm", llm=trainer.vllm_generation.llm, tokenizer=tok)  # rollout.vllm.VLLMColocateGenerator
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from searchgym.config import ConfigError
from searchgym.registry import registrar

FinishReason = Literal["stop", "eos", "length"]


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()  # generation ends with the token that completes any of these strings
    seed: int = 0


@dataclass
class Generation:
    token_ids: list[int]
    logprobs: list[float]
    finish_reason: FinishReason
    meta: dict = field(default_factory=dict)


class Generator(ABC):
    """Generate one continuation per prompt; `max_new_tokens` may differ per prompt (token budgets).

    `model_seconds` is this instance's cumulative wall time inside the model / server (benchmarks subtract it).
    `max_context` is the model's limit on prompt + generated tokens when the backend knows it (None: no limit known);
    the rollout budgets against it and ends an episode that reaches it as "context_limit"."""

    name: str = "abstract"
    max_context: int | None = None

    @property
    def model_seconds(self) -> float:
        return self.__dict__.get("_model_seconds", 0.0)

    @model_seconds.setter
    def model_seconds(self, value: float) -> None:
        self.__dict__["_model_seconds"] = value

    @abstractmethod
    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        params: SamplingParams,
        max_new_tokens: Sequence[int] | None = None,
    ) -> list[Generation]: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        pass

    @staticmethod
    def budgets(
        prompts: Sequence[Sequence[int]], params: SamplingParams, max_new_tokens: Sequence[int] | None
    ) -> list[int]:
        """The per-prompt token budget: `max_new_tokens` if given (one per prompt), else the params' default."""
        out = list(max_new_tokens) if max_new_tokens is not None else [params.max_new_tokens] * len(prompts)
        if len(out) != len(prompts):
            raise ValueError(f"{len(out)} token budgets for {len(prompts)} prompts")
        return out


GENERATORS: dict[str, Callable[..., Generator]] = {}
register_generator = registrar(GENERATORS, "generator")
GENERATOR_MODULES = {
    "hf": "searchgym.rollout.hf",
    "openai": "searchgym.rollout.openai",
    "vllm": "searchgym.rollout.vllm",
}


def make_generator(kind: str, **kwargs: Any) -> Generator:
    """The generator registered as `kind` (its module is imported on first use), built with `kwargs`."""
    if kind not in GENERATORS and kind in GENERATOR_MODULES:
        importlib.import_module(GENERATOR_MODULES[kind])
    if kind not in GENERATORS:
        raise ConfigError(
            f"unknown generator {kind!r}; registered: {sorted(set(GENERATORS) | set(GENERATOR_MODULES))}"
        )
    return GENERATORS[kind](**kwargs)


class StopChecker:
    """Finds the first generated token that completes a stop string, without decoding whole sequences.

    Stop strings that are an added token (e.g. the protocol tags of the tiny tokenizer) are matched by id; others by decoding a short tail of the generation
    (4 tokens per character covers multi-byte UTF-8 split across byte-level tokens).
    """

    def __init__(self, tokenizer, stop: Sequence[str], eos_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.eos_ids = {i for i in eos_ids if i is not None}
        self.stop_ids: set[int] = set()
        self.stop_texts: list[str] = []
        added = tokenizer.get_added_vocab()  # added tokens are never merged with neighbours
        for s in stop:
            if s in added:
                self.stop_ids.add(added[s])
            else:
                self.stop_texts.append(s)
        self.window = max((4 * len(s) + 2 for s in self.stop_texts), default=0)

    def check(self, generated: list[int]) -> FinishReason | None:
        last = generated[-1]
        if last in self.eos_ids:
            return "eos"
        if last in self.stop_ids:
            return "stop"
        if self.stop_texts:
            tail = self.tokenizer.decode(generated[-self.window :], skip_special_tokens=False)
            if any(s in tail for s in self.stop_texts):
                return "stop"
        return None


def eos_token_ids(tokenizer, model=None) -> list[int]:
    """Every id that ends a generation: the tokenizer's eos plus the model's generation_config eos (chat models
    often end turns with a different token than the tokenizer's eos)."""
    ids = {tokenizer.eos_token_id}
    gen_cfg = getattr(model, "generation_config", None)
    extra = getattr(gen_cfg, "eos_token_id", None)
    if isinstance(extra, int):
        ids.add(extra)
    elif extra:
        ids.update(extra)
    return sorted(i for i in ids if i is not None)
