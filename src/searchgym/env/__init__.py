"""The agent environment: protocol (tags / JSON tool calls), rewards, and `SearchEnv` / `BatchEnv`."""

from searchgym.env.env import BatchEnv, EnvConfig, SearchEnv, step_batch
from searchgym.env.protocol import JSON_STOP_STRINGS, STOP_STRINGS, Action, parse_action, stop_strings
from searchgym.env.rewards import REWARDS, cover_exact_match, exact_match, f1_score, format_ok

__all__ = [
    "JSON_STOP_STRINGS",
    "REWARDS",
    "STOP_STRINGS",
    "Action",
    "BatchEnv",
    "EnvConfig",
    "SearchEnv",
    "cover_exact_match",
    "exact_match",
    "f1_score",
    "format_ok",
    "parse_action",
    "step_batch",
    "stop_strings",
]
