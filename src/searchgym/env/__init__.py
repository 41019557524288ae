"""The agent environment: the tool registry, the protocols (tags / JSON tool calls), rewards, typed records, and
`SearchEnv` / `BatchEnv`."""

from searchgym.env.config import PRESETS, EnvConfig
from searchgym.env.env import BatchEnv, SearchEnv, episode_reward, step_batch
from searchgym.env.prompts import prompt_messages, render_prompt, tool_loop_messages
from searchgym.env.protocol import (
    JSON_STOP_STRINGS,
    PROTOCOL_TAGS,
    STOP_STRINGS,
    parse_action,
    protocol_tags,
    stop_strings,
)
from searchgym.env.records import Action, EpisodeSummary, ShownHit, ShownPage, Step, StepInfo
from searchgym.env.rewards import REWARDS, cover_exact_match, exact_match, f1_score, format_ok
from searchgym.env.tools import DEFAULT_TOOLS, TOOLS, Arg, Tool, tool_schemas

__all__ = [
    "DEFAULT_TOOLS",
    "JSON_STOP_STRINGS",
    "PRESETS",
    "PROTOCOL_TAGS",
    "REWARDS",
    "STOP_STRINGS",
    "TOOLS",
    "Action",
    "Arg",
    "BatchEnv",
    "EnvConfig",
    "EpisodeSummary",
    "SearchEnv",
    "ShownHit",
    "ShownPage",
    "Step",
    "StepInfo",
    "Tool",
    "cover_exact_match",
    "episode_reward",
    "exact_match",
    "f1_score",
    "format_ok",
    "parse_action",
    "prompt_messages",
    "protocol_tags",
    "render_prompt",
    "step_batch",
    "stop_strings",
    "tool_loop_messages",
    "tool_schemas",
]
