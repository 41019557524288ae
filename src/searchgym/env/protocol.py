"""Parse one model turn into one `Action`, for both protocols. `parse_action` never raises.

Tag protocol (base models), one turn:

    <think> reasoning </think>  then exactly one of
    <search> query </search>  |  <access> url </access>  |  <access> url#2 </access>  |  <answer> text </answer>

Generation stops at the closing action tag (`STOP_STRINGS`); the stop string must be part of the turn text.
JSON protocol (chat models): see `searchgym.env.tools` for the accepted tool-call shapes.

`Action.error` lists every format problem of the turn (None = clean); it is what the format gate counts.
`kind == "invalid"` means nothing ran. Problems that still let the first action run: several actions (only the
first runs), text after the action, a missing <think>, tags inside <think>, stray closing tags, a model-written
<information> block. Problems that make the turn invalid: no action, an unclosed or nested action tag, an empty or
too long query/URL, an empty answer, a turn longer than `max_action_chars`, and for JSON: no call, invalid JSON,
an unknown tool, a missing or mistyped argument.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from searchgym.env.tools import ToolCallError, extract_tool_call

# every tag of the text protocol, opening and closing (tiny tokenizers make each one token)
PROTOCOL_TAGS = tuple(
    tag
    for name in ("think", "search", "access", "answer", "information")
    for tag in (f"<{name}>", f"</{name}>")
)
STOP_STRINGS = ["</search>", "</access>", "</answer>"]
JSON_STOP_STRINGS = ["</tool_call>"]
ACTIONS = ("search", "access", "answer")
PROTOCOLS = ("tags", "json")

_TAG = re.compile(r"<(/?)(think|search|access|answer|information)>")
_ACTION_OPEN = re.compile(r"<(search|access|answer)>")
_PAGE = re.compile(r"#(\d{1,6})$")


@dataclass(frozen=True)
class Action:
    kind: str  # "search" | "access" | "answer" | "invalid"
    arg: str = ""  # the query, the URL (without "#page") or the answer
    page: int | None = None  # access only: the requested part, 1-based (None = first)
    error: str | None = None  # all format problems of the turn, "; "-joined; None when the turn is clean

    @property
    def runs(self) -> bool:
        return self.kind != "invalid"


def stop_strings(protocol: str) -> list[str]:
    """Strings at which generation of one turn should stop."""
    return list(STOP_STRINGS if protocol == "tags" else JSON_STOP_STRINGS)


def _invalid(reason: str, problems: list[str]) -> Action:
    return Action("invalid", error="; ".join([reason, *problems]))


def _make(kind: str, raw: str, page: int | None, problems: list[str], max_query_chars: int) -> Action:
    arg = raw.strip()
    if kind == "access" and page is None and (m := _PAGE.search(arg)):
        arg, page = arg[: m.start()].strip(), int(m.group(1))
    if not arg:
        return _invalid(f"empty {dict(search='query', access='URL', answer='answer')[kind]}", problems)
    if kind != "answer" and len(arg) > max_query_chars:
        return _invalid(
            f"the {kind} argument is {len(arg)} characters; the limit is {max_query_chars}", problems
        )
    if page is not None and page < 1:
        return _invalid(f"page {page} does not exist; pages start at 1", problems)
    return Action(kind, arg, page, "; ".join(problems) or None)


def _parse_tags(text: str, require_think: bool, max_query_chars: int) -> Action:
    problems: list[str] = []
    saw_think = False
    think_open = False
    action: tuple[str, int] | None = None  # (name, content start) of the open action tag
    for m in _TAG.finditer(text):
        closing, name = m.group(1) == "/", m.group(2)
        tag = m.group(0)
        if action is not None:
            if closing and name == action[0]:
                break
            return _invalid(f"{tag} inside <{action[0]}> (nested or unbalanced tags)", problems)
        if think_open:
            if closing and name == "think":
                think_open = False
            else:
                problems.append(f"{tag} inside <think>")
        elif name == "think" and not closing:
            if saw_think:
                problems.append("several <think> blocks")
            saw_think = think_open = True
        elif name in ACTIONS and not closing:
            action = (name, m.end())
        elif name == "information":
            problems.append(f"the model wrote {tag}; tool output comes from the environment")
        else:
            problems.append(f"stray {tag}")
    else:
        if action is not None:
            return _invalid(f"unclosed <{action[0]}>", problems)
        if think_open:
            return _invalid("unclosed <think> and no action", problems)
        return _invalid("no action; end the turn with <search>, <access> or <answer>", problems)
    name, start = action
    rest = text[m.end() :]
    if _ACTION_OPEN.search(rest):
        problems.append("several actions in one turn; only the first ran")
    elif rest.strip():
        problems.append(f"text after </{name}>")
    if require_think and not saw_think:
        problems.append("missing <think>…</think> before the action")
    return _make(name, text[start : m.start()], None, problems, max_query_chars)


def _parse_json(text: str, max_query_chars: int) -> Action:
    try:
        call = extract_tool_call(text)
    except ToolCallError as e:
        return _invalid(str(e), [])
    arg = call.args[{"search": "query", "access": "url", "answer": "answer"}[call.name]]
    return _make(call.name, arg, call.args.get("page"), list(call.problems), max_query_chars)


def parse_action(
    text: str,
    protocol: str = "tags",
    *,
    require_think: bool = False,
    max_query_chars: int = 512,
    max_action_chars: int = 16384,
) -> Action:
    """Parse the raw text of one model turn. Never raises on any `text`; see the module docstring."""
    if not isinstance(text, str):
        return _invalid(f"the turn must be text, got {type(text).__name__}", [])
    if len(text) > max_action_chars:
        return _invalid(f"the turn is {len(text)} characters; the limit is {max_action_chars}", [])
    if protocol == "json":
        return _parse_json(text, max_query_chars)
    if protocol == "tags":
        return _parse_tags(text, require_think, max_query_chars)
    return _invalid(f"unknown protocol {protocol!r}; use one of {PROTOCOLS}", [])
