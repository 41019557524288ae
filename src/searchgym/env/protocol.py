"""Parse one model turn into one `Action`, for both protocols; check typed calls the same way. Never raises.

Tag protocol (base models), one turn: `<think> reasoning </think>` then exactly one `<tool> main argument </tool>`
of an active tool (`<search> query </search>`, `<access> url#2 </access>`, `<answer> text </answer>`, …).
Generation stops at the closing tag of an active tool (`stop_strings`); the stop string must be part of the turn.
JSON protocol (chat models): see `searchgym.env.jsoncall` for the accepted call shapes. Typed calls
(`SearchEnv.step(Action(...))`, the TRL tools) go through the same argument checks as JSON calls (`check_call`).

`Action.error` lists every format problem of the turn (None = clean), each problem once with its count, at most
`MAX_PROBLEMS` of them, never more than a short cut of the model's own text; it is what the format gate counts.
`tool == "invalid"` means nothing ran. Problems that still let the first action run: several actions (only the
first runs), text after the action, a missing <think>, tags inside <think>, stray closing tags, a model-written
information tag, unknown arguments. Problems that make the turn invalid: no action, an inactive or unknown tool,
an unclosed or nested action tag, an empty or too long argument, a page out of range, a turn longer than
`max_action_chars`, and for JSON: no call, invalid JSON, a missing or mistyped argument.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from searchgym.env.jsoncall import ToolCallError, extract_tool_call
from searchgym.env.observe import echo
from searchgym.env.records import INVALID, Action
from searchgym.env.tools import DEFAULT_TOOLS, TOOLS, active

PROTOCOLS = ("tags", "json")
JSON_STOP_STRINGS = ["</tool_call>"]
MAX_PROBLEMS = 6  # distinct problems listed in one error; more are counted [ours]
MAX_ERROR_CHARS = 600  # the whole error of a turn is cut to this [ours]


def protocol_tags(tools: Sequence[str] = DEFAULT_TOOLS) -> tuple[str, ...]:
    """Every tag of the text protocol for these tools, opening and closing (tiny tokenizers make each one token)."""
    names = ["think", *(t.name for t in active(tools)), "information"]
    return tuple(tag for name in names for tag in (f"<{name}>", f"</{name}>"))


def stop_strings(protocol: str, tools: Sequence[str] = DEFAULT_TOOLS) -> list[str]:
    """Strings at which generation of one turn should stop."""
    return [t.tags[1] for t in active(tools)] if protocol == "tags" else list(JSON_STOP_STRINGS)


PROTOCOL_TAGS = protocol_tags()
STOP_STRINGS = stop_strings("tags")
_SURROGATE = re.compile("[\ud800-\udfff]")


@lru_cache(maxsize=64)
def _patterns(tools: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """The tag regex and the action-opening regex of one tool set (tags of inactive tools are plain text)."""
    names = [t.name for t in active(tools)]
    tag = re.compile(r"<(/?)(think|information|" + "|".join(map(re.escape, names)) + r")>")
    return tag, re.compile("|".join(re.escape(f"<{n}>") for n in names))


def clean_text(text: str) -> str:
    """`text` with lone surrogates (unencodable in UTF-8) replaced by U+FFFD, so infos stay writable as JSON."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


class Problems:
    """Format problems of one turn: each listed once with its count, at most MAX_PROBLEMS distinct ones."""

    def __init__(self, items: Sequence[str] = ()):
        self.counts: dict[str, int] = {}
        for item in items:
            self.add(item)

    def add(self, problem: str) -> None:
        self.counts[problem] = self.counts.get(problem, 0) + 1

    def text(self) -> str | None:
        items = [p if n == 1 else f"{p} ({n} times)" for p, n in self.counts.items()]
        if len(items) > MAX_PROBLEMS:
            items = items[:MAX_PROBLEMS] + [f"{len(items) - MAX_PROBLEMS} more problem(s)"]
        return echo("; ".join(items), MAX_ERROR_CHARS) if items else None


def invalid(reason: str, problems: Problems | None = None) -> Action:
    rest = problems.text() if problems else None
    return Action(INVALID, {}, echo(f"{reason}; {rest}" if rest else reason, MAX_ERROR_CHARS))


def _tool_list(tools: Sequence[str]) -> str:
    return ", ".join(t.name for t in active(tools))


def check_call(
    name: Any,
    args: dict[str, Any],
    tools: Sequence[str],
    max_query_chars: int,
    max_action_chars: int,
    problems: Problems | None = None,
) -> Action:
    """One call checked against the registry: the tool is active, the arguments are known, typed, non-empty and
    within their limits; optional ones are filled with their defaults. Every protocol ends here."""
    problems = problems or Problems()
    tool = TOOLS.get(name) if isinstance(name, str) else None
    if tool is None:
        return invalid(f"unknown tool {echo(str(name), 40)!r}; the tools are {_tool_list(tools)}", problems)
    if name not in tools:
        return invalid(f"{name} is not a tool here; the tools are {_tool_list(tools)}", problems)
    known = {a.name for a in tool.args}
    unknown = [k for k in args if k not in known]
    if unknown:
        names = sorted(echo(str(k), 40) for k in unknown[:MAX_PROBLEMS])
        problems.add(
            f"unexpected argument(s) {names} for {name}" + (" …" if len(unknown) > MAX_PROBLEMS else "")
        )
    args = tool.normalize({k: v for k, v in args.items() if k in known})
    out: dict[str, Any] = {}
    for a in tool.args:
        value = args.get(a.name)
        if value is None:
            if a.required:
                return invalid(f"{name} needs the argument {a.name!r}", problems)
            out[a.name] = a.default
            continue
        if not isinstance(value, a.type) or isinstance(value, bool):
            got = type(value).__name__
            want = {str: "a string", int: "an integer"}[a.type]
            return invalid(f"argument {a.name!r} of {name} must be {want}, got {got}", problems)
        if isinstance(value, str):
            value = clean_text(value).strip()
            if not value:
                return invalid(f"empty {a.noun or a.name}", problems)
            limit = max_query_chars if a.bounded else max_action_chars
            if len(value) > limit:
                return invalid(
                    f"the {name} argument is {len(value)} characters; the limit is {limit}", problems
                )
        elif a.minimum is not None and value < a.minimum:
            shown = f" {value}" if value > -(10**9) else ""  # never print a huge number back
            return invalid(f"{a.name}{shown} does not exist; {a.name}s start at {a.minimum}", problems)
        elif a.maximum is not None and value > a.maximum:
            return invalid(f"{a.name} is above the limit {a.maximum}", problems)
        out[a.name] = value
    return Action(name, out, problems.text())


def _parse_tags(
    text: str, tools: Sequence[str], require_think: bool, max_query_chars: int, max_chars: int
) -> Action:
    tag_re, open_re = _patterns(tuple(tools))
    problems = Problems()
    saw_think = False
    think_open = False
    action: tuple[str, int] | None = None  # (name, content start) of the open action tag
    for m in tag_re.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        tag = m.group(0)
        if action is not None:
            if closing and name == action[0]:
                break
            return invalid(f"{tag} inside <{action[0]}> (nested or unbalanced tags)", problems)
        if think_open:
            if closing and name == "think":
                think_open = False
            else:
                problems.add(f"{tag} inside <think>")
        elif name == "think" and not closing:
            if saw_think:
                problems.add("several <think> blocks")
            saw_think = think_open = True
        elif name not in ("think", "information") and not closing:
            action = (name, m.end())
        elif name == "information":
            problems.add("the model wrote an information tag; tool output comes from the environment")
        else:
            problems.add(f"stray {tag}")
    else:
        if action is not None:
            return invalid(f"unclosed <{action[0]}>", problems)
        if think_open:
            return invalid("unclosed <think> and no action", problems)
        tags = [t.tags[0] for t in active(tools)]
        hint = "end the turn with " + (f"{', '.join(tags[:-1])} or {tags[-1]}" if len(tags) > 1 else tags[0])
        other = next((t.tags[0] for t in TOOLS.values() if t.name not in tools and t.tags[0] in text), None)
        reason = f"{other} is not a tool here; {hint}" if other else f"no action; {hint}"
        return invalid(reason, problems)
    name, start = action
    rest = text[m.end() :]
    if open_re.search(rest):
        problems.add("several actions in one turn; only the first ran")
    elif rest.strip():
        problems.add(f"text after </{name}>")
    if require_think and not saw_think:
        problems.add("missing <think>…</think> before the action")
    main = TOOLS[name].main
    return check_call(name, {main: text[start : m.start()]}, tools, max_query_chars, max_chars, problems)


def _parse_json(text: str, tools: Sequence[str], max_query_chars: int, max_chars: int) -> Action:
    try:
        call = extract_tool_call(text)
    except ToolCallError as e:
        return invalid(str(e))
    return check_call(call.name, call.args, tools, max_query_chars, max_chars, Problems(call.problems))


def parse_action(
    text: str,
    protocol: str = "tags",
    *,
    tools: Sequence[str] = DEFAULT_TOOLS,
    require_think: bool = False,
    max_query_chars: int = 512,
    max_action_chars: int = 16384,
) -> Action:
    """Parse the raw text of one model turn. Never raises on any `text`; see the module docstring."""
    if not isinstance(text, str):
        return invalid(f"the turn must be text, got {type(text).__name__}")
    if len(text) > max_action_chars:
        return invalid(f"the turn is {len(text)} characters; the limit is {max_action_chars}")
    text = clean_text(text)
    if protocol == "json":
        return _parse_json(text, tools, max_query_chars, max_action_chars)
    if protocol == "tags":
        return _parse_tags(text, tools, require_think, max_query_chars, max_action_chars)
    return invalid(f"unknown protocol {echo(str(protocol), 40)!r}; use one of {PROTOCOLS}")


def check_action(action: Action, tools: Sequence[str], max_query_chars: int, max_action_chars: int) -> Action:
    """A typed action (not parsed from text) checked like a JSON call; its own error is kept."""
    if not isinstance(action, Action):
        return invalid(f"the action must be an Action or text, got {type(action).__name__}")
    problems = Problems([action.error] if action.error else [])
    if not action.runs:
        return invalid(action.error or "invalid action")
    if not isinstance(action.args, dict):
        return invalid(f"the arguments of {echo(str(action.tool), 40)} must be a dict", problems)
    return check_call(action.tool, action.args, tools, max_query_chars, max_action_chars, problems)
