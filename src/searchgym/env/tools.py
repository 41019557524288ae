"""JSON tool calls for chat models: the OpenAI function schemas and the extraction of one call from a turn.

Accepted shapes of a model turn (the first call runs; more than one is flagged):

1. Qwen / Hermes chat templates: `<tool_call>{"name": "search", "arguments": {"query": "…"}}</tool_call>`
   (text before the block, e.g. reasoning, is allowed).
2. A bare JSON object anywhere in the turn: `{"name": "search", "arguments": {…}}`, optionally in a ```json fence.

Inside either shape, `"parameters"` is accepted for `"arguments"` (Llama 3 style), `"arguments"` may be a JSON string
(OpenAI `tool_calls` style), and an OpenAI `{"type": "function", "function": {…}}` wrapper is unwrapped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

TOOL_SCHEMAS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": "search",
            "description": "Search the encyclopedia. Returns the top documents with their URL, title and the "
            "beginning of their text.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string", "description": "Keywords to search for."}},
                "required": ["query"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "access",
            "description": "Open a page by its URL (from a search result). Long pages are split into numbered "
            "parts; ask for a later part with `page`.",
            "parameters": {
                "type": "object",
                "properties": {
                    "url": {"type": "string", "description": "The URL of the page."},
                    "page": {"type": "integer", "description": "Part number, starting at 1 (default 1)."},
                },
                "required": ["url"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "answer",
            "description": "Give the final answer to the question. This ends the episode.",
            "parameters": {
                "type": "object",
                "properties": {"answer": {"type": "string", "description": "A short answer, e.g. a name."}},
                "required": ["answer"],
            },
        },
    },
]

TOOL_ARGS: dict[str, dict[str, type]] = {
    "search": {"query": str},
    "access": {"url": str, "page": int},
    "answer": {"answer": str},
}
REQUIRED_ARGS: dict[str, str] = {"search": "query", "access": "url", "answer": "answer"}
OPEN, CLOSE = "<tool_call>", "</tool_call>"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ToolCall:
    name: str
    args: dict[str, Any]
    problems: tuple[str, ...] = ()  # format problems that do not stop the call from running


class ToolCallError(ValueError):
    """The turn holds no usable tool call; the message says why."""


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ToolCallError(f"the tool call is not valid JSON ({str(e)[:80]})") from None


def _strip_fence(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text[3:]
        if text.startswith("json"):
            text = text[4:]
        text = text.rsplit("```", 1)[0] if "```" in text else text
    return text.strip()


def _find_call(text: str) -> tuple[Any, list[str]]:
    """The first call object in the turn and the format problems around it."""
    problems: list[str] = []
    start = text.find(OPEN)
    if start >= 0:
        end = text.find(CLOSE, start)
        if end < 0:
            raise ToolCallError(f"unclosed {OPEN}; end the call with {CLOSE}")
        rest = text[end + len(CLOSE) :]
        if OPEN in rest:
            problems.append("several tool calls in one turn; only the first ran")
        elif rest.strip():
            problems.append(f"text after {CLOSE}")
        return _loads(_strip_fence(text[start + len(OPEN) : end])), problems
    if CLOSE in text:
        raise ToolCallError(f"{CLOSE} without {OPEN}")
    body = text.find("{")
    if body < 0:
        raise ToolCallError(f'no tool call; call a tool with {OPEN}{{"name": …, "arguments": {{…}}}}{CLOSE}')
    try:
        obj, end = _DECODER.raw_decode(text, body)
    except (ValueError, RecursionError) as e:
        raise ToolCallError(f"the tool call is not valid JSON ({str(e)[:80]})") from None
    rest = text[end:].strip().removesuffix("```").strip()
    if rest.startswith("{"):
        problems.append("several tool calls in one turn; only the first ran")
    elif rest:
        problems.append("text after the tool call")
    return obj, problems


def extract_tool_call(text: str) -> ToolCall:
    """Parse the first tool call of a chat-model turn; raises `ToolCallError` (and nothing else) when unusable."""
    obj, problems = _find_call(text)
    if isinstance(obj, list) and obj:
        problems.append(
            "several tool calls in one turn; only the first ran" if len(obj) > 1 else "call in a list"
        )
        obj = obj[0]
    if not isinstance(obj, dict):
        raise ToolCallError(f"a tool call must be a JSON object, got {type(obj).__name__}")
    if isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or name not in TOOL_ARGS:
        raise ToolCallError(f"unknown tool {str(name)[:40]!r}; the tools are {', '.join(TOOL_ARGS)}")
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args = _loads(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise ToolCallError(f"the arguments of {name} must be a JSON object, got {type(args).__name__}")
    spec = TOOL_ARGS[name]
    unknown = sorted(str(k)[:40] for k in args if k not in spec)
    if unknown:
        problems.append(f"unexpected argument(s) {unknown} for {name}")
    required = REQUIRED_ARGS[name]
    if required not in args:
        raise ToolCallError(f"{name} needs the argument {required!r}")
    for key, tp in spec.items():
        if key in args and (not isinstance(args[key], tp) or isinstance(args[key], bool)):
            raise ToolCallError(
                f"argument {key!r} of {name} must be a {tp.__name__}, got {type(args[key]).__name__}"
            )
    return ToolCall(name, {k: v for k, v in args.items() if k in spec}, tuple(problems))
