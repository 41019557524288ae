"""Find the one JSON tool call in a chat-model turn (syntax only; `protocol` checks it against the tool registry).

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

OPEN, CLOSE = "<tool_call>", "</tool_call>"
_DECODER = json.JSONDecoder()


@dataclass(frozen=True)
class ToolCall:
    name: Any  # as written; the registry decides whether it names a tool
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
    """The first tool call of a chat-model turn; raises `ToolCallError` (and nothing else) when there is none."""
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
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args = _loads(args) if args.strip() else {}
    if not isinstance(args, dict):
        raise ToolCallError(f"the arguments of a tool call must be a JSON object, got {type(args).__name__}")
    return ToolCall(obj.get("name"), args, tuple(problems))
