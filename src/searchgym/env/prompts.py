"""Prompts, rendered by pure functions of (task, env config): `render_prompt` (what `SearchEnv.reset` returns) and
`prompt_messages` (the chat messages). No environment or engine is needed, so exports render them directly.

Placeholders of every template: {question}, {max_turns}, {topk}, {tools} (the active tools' lines, generated from
the tool registry). `EnvConfig.prompt` replaces the built-in tag prompt or JSON system prompt with your own
template; `EnvConfig.prompt_style` picks a built-in one ("searchgym", or "searchr1" in the style of Search-R1's
base-model prompt, which describes exactly the search and answer tools).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from searchgym.env.tools import active
from searchgym.types import Task

if TYPE_CHECKING:
    from searchgym.env.config import EnvConfig

TAGS_PROMPT = """\
Answer the question by searching an encyclopedia. In every turn, first think inside <think> and </think>, \
then take exactly one action:
{tools}
You have at most {max_turns} turns.
Question: {question}
"""

# Search-R1's base prompt, in our words: reason in <think> whenever new information arrives, search with
# <search> query </search> as often as needed (results between <information> and </information>), answer without
# explanation, then the question. Search-R1's reward decodes prompt + response and takes the last
# `<answer>(.*?)</answer>` match only when there are at least two, so the prompt holds exactly one such match
# (the example); the instructions name the answer tags without forming a pair.
SEARCHR1_PROMPT = """\
Answer the question below. Each time you receive new information, reason about it inside <think> and </think> \
first. When you are missing some knowledge, query the search engine with <search> query </search>; its top \
results come back between <information> and </information>. Search as often as you need. Once nothing more is \
needed, write only the final answer, with no explanation, between the answer tags, e.g. <answer> Paris </answer>. \
Question: {question}
"""

JSON_SYSTEM_PROMPT = """\
You answer questions by searching an encyclopedia with tools. In every turn call exactly one tool by writing
<tool_call>{{"name": "<tool>", "arguments": {{...}}}}</tool_call>
Tools:
{tools}
You have at most {max_turns} turns."""

JSON_USER_PROMPT = "Question: {question}"

# For loops where the chat template itself lists the tools and the call syntax (TRL's environment_factory loop)
TOOL_LOOP_PROMPT = "Answer the question by searching the encyclopedia with the tools. Question: {question}"

# style -> (template per protocol, the exact tool set it describes or None for any)
PROMPT_STYLES: dict[str, tuple[dict[str, str], tuple[str, ...] | None]] = {
    "searchgym": ({"tags": TAGS_PROMPT, "json": JSON_SYSTEM_PROMPT}, None),
    "searchr1": ({"tags": SEARCHR1_PROMPT}, ("search", "answer")),
}


def tool_lines(cfg: EnvConfig) -> str:
    """The active tools as the prompt lists them: their tag form, or their JSON signature and description."""
    tools = active(cfg.tools)
    if cfg.protocol == "tags":
        return "\n".join(t.tag_line() for t in tools).format(topk=cfg.topk)
    return "\n".join(f"- {t.signature()}: {t.description}" for t in tools)


def _fill(template: str, task: Task, cfg: EnvConfig) -> str:
    return template.format(
        question=task.question, max_turns=cfg.max_turns, topk=cfg.topk, tools=tool_lines(cfg)
    )


def _template(cfg: EnvConfig) -> str:
    return cfg.prompt or PROMPT_STYLES[cfg.prompt_style][0][cfg.protocol]


def render_prompt(task: Task, cfg: EnvConfig) -> str:
    """The tag prompt (instructions + question), or for JSON the user message."""
    return _fill(JSON_USER_PROMPT if cfg.protocol == "json" else _template(cfg), task, cfg)


def prompt_messages(task: Task, cfg: EnvConfig) -> list[dict[str, str]]:
    """The prompt as chat messages for a tokenizer's chat template (system + user for json)."""
    if cfg.protocol == "json":
        return [
            {"role": "system", "content": _fill(_template(cfg), task, cfg)},
            {"role": "user", "content": _fill(JSON_USER_PROMPT, task, cfg)},
        ]
    return [{"role": "user", "content": _fill(_template(cfg), task, cfg)}]


def tool_loop_messages(task: Task, cfg: EnvConfig) -> list[dict[str, str]]:
    """The prompt for a trainer's own tool loop (TRL `environment_factory`): one user message; the chat template
    renders the tools (their schemas come from the same registry)."""
    return [{"role": "user", "content": _fill(TOOL_LOOP_PROMPT, task, cfg)}]
