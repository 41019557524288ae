"""Task synthesis settings, the task types and their difficulty levels."""

from __future__ import annotations

from dataclasses import dataclass, field

from searchgym.config import ConfigError, YamlConfig

TYPES = ("chain", "obfuscated", "intersection", "comparison")
MAX_LEVEL = 5


@dataclass
class ParaphraseConfig(YamlConfig):
    """Optional rewrite of every question by an LLM behind an OpenAI-compatible endpoint (off by default)."""

    enabled: bool = False
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = "default"
    api_key_env: str = (
        "OPENAI_API_KEY"  # name of the env var holding the key; empty key is fine for local servers
    )
    temperature: float = 0.7
    timeout_s: float = 30.0
    max_retries: int = 2


@dataclass
class TaskConfig(YamlConfig):
    seed: int = 0
    max_hops: int = 5  # longest chain; the issue asks for at least 5
    chain_per_hops: int = 200  # chains for each hop count 1..max_hops
    attribute_answer_fraction: float = 0.2  # share of chains whose last hop asks for an attribute value
    obfuscated: int = 300
    intersection: int = 300
    comparison: int = 300
    comparison_hop_fraction: float = (
        0.5  # share of comparisons whose operands are 1-hop descriptions (level 4)
    )
    max_anchor_candidates: int = (
        10  # an obfuscated start's anchor may hold the relation for at most this many
    )
    attempts_per_task: int = 40  # sampling attempts budget per requested task before giving up on a type
    splits: dict[str, float] = field(default_factory=lambda: {"train": 0.8, "dev": 0.1, "test": 0.1})
    split_mode: str = (
        "start"  # "start": hash of the start entity | "entity": entity-disjoint (see tasks/splits.py)
    )
    paraphrase: ParaphraseConfig = field(default_factory=ParaphraseConfig)

    def validate(self) -> None:
        if self.max_hops < 1:
            raise ConfigError(f"max_hops={self.max_hops}: must be at least 1")
        if not self.splits or any(v < 0 for v in self.splits.values()) or sum(self.splits.values()) <= 0:
            raise ConfigError(f"splits={self.splits}: give non-negative ratios with a positive sum")
        if self.split_mode not in ("start", "entity"):
            raise ConfigError(f"split_mode={self.split_mode!r}: choose 'start' or 'entity'")
        for name in ("comparison_hop_fraction", "attribute_answer_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name}={getattr(self, name)}: must be in [0, 1]")
        for name in ("chain_per_hops", "obfuscated", "intersection", "comparison"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name}={getattr(self, name)}: a task count must be >= 0")
        for name in ("max_anchor_candidates", "attempts_per_task"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")


def level_of(task_type: str, variant: int) -> int:
    """Difficulty level (see docs/tasks.md). `variant`: chain hops; obfuscated hops after the hidden start;
    comparison 0 = named operands, 1 = 1-hop operands; intersection: number of constraints."""
    if task_type == "chain":
        return min(variant, MAX_LEVEL)
    if task_type == "obfuscated":
        return min(2 + variant, MAX_LEVEL)
    if task_type == "intersection":
        return min(1 + variant, MAX_LEVEL)
    if task_type == "comparison":
        return 3 + variant
    raise ValueError(f"unknown task type {task_type!r}; known: {TYPES}")
