"""`EnvConfig`: every setting of the environment (protocol, tools, budgets, reward, success rule), and presets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.env.observe import SNIPPETS
from searchgym.env.prompts import PROMPT_STYLES
from searchgym.env.protocol import PROTOCOLS
from searchgym.env.rewards import REWARDS
from searchgym.env.tools import DEFAULT_TOOLS, TOOLS

# `searchgym tasks export --protocol NAME` and `EnvConfig.preset(NAME)`: protocol + tool set + prompt in one word
PRESETS: dict[str, dict[str, Any]] = {
    "tag": {"protocol": "tags"},
    "json": {"protocol": "json"},
    "searchr1": {"protocol": "tags", "tools": ["search", "answer"], "prompt_style": "searchr1"},
}


@dataclass
class EnvConfig(YamlConfig):
    protocol: str = (
        "tags"  # "tags": <think>/<search>/<access>/<answer> for base models; "json": tool calls for chat
    )
    tools: list[str] = field(
        default_factory=lambda: list(DEFAULT_TOOLS)
    )  # active tools; "answer" always [ours]
    max_turns: int = 8  # model turns per episode; ASearcher/SearchGym train 7B models with 32 [convention]
    topk: int = 5  # documents per search [convention]
    doc_chars: int = 300  # characters of each search hit shown [ours]
    snippet: str = "lead"  # "lead": each hit's first doc_chars characters; "best": its sentence best matching
    # the query (query-term overlap weighted by rarity in the article, like an engine's crop) [ours]
    page_chars: int = 1500  # part size when an article is opened with access [ours]
    max_observation_chars: int = 4096  # every observation, error ones included, is at most this long [ours]
    max_query_chars: int = 512  # longer queries / URLs are invalid turns [ours]
    max_action_chars: int = 16384  # longer turns are invalid without parsing [ours]
    require_think: bool = True  # tags: a turn without <think>…</think> is a format error [convention]
    reward: str = "f1"  # outcome score, a name in searchgym.env.rewards.REWARDS: "f1" | "em" | "cover_em"
    format_gate: bool = True  # a trajectory with any format error scores `format_fail_reward` [convention]
    format_fail_reward: float = 0.0
    no_answer_reward: float = 0.0  # outcome when the episode ends without an answer [convention]
    max_invalid_turns: int = 3  # this many invalid turns in a row end the episode; 0 = never [ours]
    surface_weight: float = 0.0  # shaping: + weight * share of evidence URLs that some search showed [ours]
    open_weight: float = 0.0  # shaping: + weight * share of evidence URLs opened with access [ours]
    success_metric: str = (
        "em"  # success = answered and scores[success_metric] >= success_threshold [convention]
    )
    success_threshold: float = 1.0
    prompt_style: str = "searchgym"  # built-in prompt: "searchgym" | "searchr1" (tags, search + answer only)
    prompt: str = (
        ""  # custom template for the tag prompt / JSON system prompt; "" = built-in (env/prompts.py)
    )

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EnvConfig:
        """`tag`, `json` or `searchr1` (tags, tools search + answer, Search-R1's prompt style), then overrides."""
        if name not in PRESETS:
            raise ConfigError(f"unknown env preset {name!r}; choose one of {list(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **overrides}, where="env")

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("protocol", self.protocol, PROTOCOLS),
            ("snippet", self.snippet, SNIPPETS),
            ("reward", self.reward, tuple(REWARDS)),
            ("success_metric", self.success_metric, tuple(REWARDS)),
            ("prompt_style", self.prompt_style, tuple(PROMPT_STYLES)),
        ):
            if value not in allowed:
                raise ConfigError(f"env.{key}: {value!r} is not one of {list(allowed)}")
        self._check_tools()
        for name in ("max_turns", "topk", "doc_chars", "page_chars", "max_query_chars", "max_action_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"env.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_observation_chars < 256:
            raise ConfigError(f"env.max_observation_chars must be >= 256, got {self.max_observation_chars}")
        if self.max_invalid_turns < 0:
            raise ConfigError(f"env.max_invalid_turns must be >= 0, got {self.max_invalid_turns}")
        if not 0.0 < self.success_threshold <= 1.0:
            raise ConfigError(f"env.success_threshold must be in (0, 1], got {self.success_threshold}")

    def _check_tools(self) -> None:
        self.tools = list(dict.fromkeys(self.tools))
        unknown = [t for t in self.tools if t not in TOOLS]
        if unknown:
            raise ConfigError(f"env.tools: unknown tool(s) {unknown}; the registered tools are {list(TOOLS)}")
        if "answer" not in self.tools:
            raise ConfigError(
                "env.tools must include 'answer' (the only way to end an episode with an answer)"
            )
        templates, tool_set = PROMPT_STYLES[self.prompt_style]
        if self.protocol not in templates:
            raise ConfigError(
                f"env.prompt_style {self.prompt_style!r} is for protocol(s) {list(templates)}, not {self.protocol!r}"
            )
        if tool_set is not None and not self.prompt and sorted(self.tools) != sorted(tool_set):
            raise ConfigError(
                f"env.prompt_style {self.prompt_style!r} describes exactly the tools {list(tool_set)}; "
                f"got {self.tools} (write your own env.prompt for another tool set)"
            )
