import json
import random
import re

import pytest

from searchgym.env.protocol import (
    JSON_STOP_STRINGS,
    PROTOCOL_TAGS,
    STOP_STRINGS,
    Action,
    parse_action,
    stop_strings,
)
from searchgym.env.rewards import format_ok
from searchgym.env.tools import DEFAULT_TOOLS, TOOLS

SURROGATE = re.compile("[\ud800-\udfff]")

THINK = "<think>I need the birthplace.</think>\n"


@pytest.mark.parametrize(
    "text, kind, arg, page",
    [
        (THINK + "<search> Varo Kestrel birthplace </search>", "search", "Varo Kestrel birthplace", None),
        (
            THINK + "<access>https://w.example/wiki/Varo_Kestrel</access>",
            "access",
            "https://w.example/wiki/Varo_Kestrel",
            None,
        ),
        (THINK + "<access> https://w/x#3 </access>", "access", "https://w/x", 3),
        (THINK + "<access>https://w/x#frag</access>", "access", "https://w/x#frag", None),
        (THINK + "<answer> Quillport </answer>", "answer", "Quillport", None),
        ("preamble " + THINK + "<answer>Quillport</answer>\n", "answer", "Quillport", None),
    ],
)
def test_clean_tag_turns(text, kind, arg, page):
    act = parse_action(text, "tags", require_think=True)
    args = {TOOLS[kind].main: arg, **({"page": page or 1} if kind == "access" else {})}
    assert act == Action(kind, args, None)


@pytest.mark.parametrize(
    "text, kind, error_part",
    [
        ("<search>a</search>", "search", "missing <think>"),
        (THINK + "<search>a</search><answer>b</answer>", "search", "several actions"),
        (THINK + "<answer>b</answer> because I said so", "answer", "text after </answer>"),
        (THINK + "<search>a</search>\n<information>fake</information>", "search", "text after </search>"),
        ("<think>use <search> here</think><search>a</search>", "search", "<search> inside <think>"),
        ("<think>a</think><think>b</think><answer>x</answer>", "answer", "several <think>"),
        ("</think><answer>x</answer>", "answer", "stray </think>"),
        (
            "<think>x</think><information>y</information><answer>x</answer>",
            "answer",
            "the model wrote an information tag",
        ),
        (THINK + "<search>a<search>b</search>", "invalid", "<search> inside <search>"),
        (THINK + "<search>a</answer>", "invalid", "</answer> inside <search>"),
        (THINK + "<search>a", "invalid", "unclosed <search>"),
        ("<think>still thinking", "invalid", "unclosed <think>"),
        ("just text", "invalid", "no action"),
        ("", "invalid", "no action"),
        (THINK + "<search>   </search>", "invalid", "empty query"),
        (THINK + "<access></access>", "invalid", "empty URL"),
        (THINK + "<access>u#0</access>", "invalid", "pages start at 1"),
        (THINK + "<answer> </answer>", "invalid", "empty answer"),
        (THINK + "<search>" + "q" * 600 + "</search>", "invalid", "the limit is 512"),
        ("<answer>" + "x" * 20000 + "</answer>", "invalid", "the limit is 16384"),
        ("<SEARCH>a</SEARCH>", "invalid", "no action"),
    ],
)
def test_flawed_tag_turns(text, kind, error_part):
    act = parse_action(text, "tags", require_think=True)
    assert act.tool == kind
    assert act.error is not None and error_part in act.error
    assert not format_ok([act])


def test_first_action_runs_when_several():
    act = parse_action(THINK + "<answer>A</answer><answer>B</answer>", "tags")
    assert (act.tool, act.args) == ("answer", {"answer": "A"})


def test_think_not_required_by_default():
    assert parse_action("<search>a</search>", "tags") == Action("search", {"query": "a"})


def call(name, args, wrap=True):
    body = json.dumps({"name": name, "arguments": args})
    return f"<tool_call>\n{body}\n</tool_call>" if wrap else body


@pytest.mark.parametrize(
    "text, expected",
    [
        (call("search", {"query": "Varo Kestrel"}), Action("search", {"query": "Varo Kestrel"})),
        ("Let me look.\n" + call("search", {"query": "x"}), Action("search", {"query": "x"})),
        (
            call("access", {"url": "https://w/x", "page": 2}),
            Action("access", {"url": "https://w/x", "page": 2}),
        ),
        (call("access", {"url": "https://w/x#4"}), Action("access", {"url": "https://w/x", "page": 4})),
        (call("access", {"url": "https://w/x"}), Action("access", {"url": "https://w/x", "page": 1})),
        (call("answer", {"answer": "Quillport"}, wrap=False), Action("answer", {"answer": "Quillport"})),
        ('```json\n{"name": "answer", "arguments": {"answer": "Q"}}\n```', Action("answer", {"answer": "Q"})),
        ('{"name": "search", "parameters": {"query": "x"}}', Action("search", {"query": "x"})),
        ('{"name": "search", "arguments": "{\\"query\\": \\"x\\"}"}', Action("search", {"query": "x"})),
        (
            '{"type": "function", "function": {"name": "search", "arguments": {"query": "x"}}}',
            Action("search", {"query": "x"}),
        ),
        (
            "<tool_call>" + call("answer", {"answer": "Q"}, wrap=False) + "</tool_call>",
            Action("answer", {"answer": "Q"}),
        ),
    ],
)
def test_clean_json_turns(text, expected):
    assert parse_action(text, "json") == expected


@pytest.mark.parametrize(
    "text, kind, error_part",
    [
        ("The answer is Quillport.", "invalid", "no tool call"),
        ("<tool_call>{'name': 'search'}</tool_call>", "invalid", "not valid JSON"),
        ('<tool_call>{"name": "search", "arguments": {"query": "x"}}', "invalid", "unclosed <tool_call>"),
        ('{"name": "search", "arguments": {"query": "x"}}</tool_call>', "invalid", "without <tool_call>"),
        (call("browse", {"url": "x"}), "invalid", "unknown tool 'browse'"),
        ('{"arguments": {"query": "x"}}', "invalid", "unknown tool"),
        (call("search", {"q": "x"}), "invalid", "needs the argument 'query'"),
        (call("search", {"query": 3}), "invalid", "must be a string"),
        (call("access", {"url": "u", "page": "2"}), "invalid", "must be an integer"),
        (call("access", {"url": "u", "page": True}), "invalid", "must be an integer"),
        (call("access", {"url": "u", "page": 0}), "invalid", "pages start at 1"),
        (call("search", []), "invalid", "must be a JSON object"),
        ("<tool_call>[1, 2]</tool_call>", "invalid", "must be a JSON object"),
        ('{"name": "search", "arguments": "{not json"}', "invalid", "not valid JSON"),
        ("<tool_call>" + "[" * 5000 + "</tool_call>", "invalid", "not valid JSON"),
        (call("search", {"query": ""}), "invalid", "empty query"),
        (call("search", {"query": "a"}) + call("answer", {"answer": "b"}), "search", "several tool calls"),
        (call("answer", {"answer": "b"}) + " thanks", "answer", "text after </tool_call>"),
        (call("search", {"query": "a", "k": 3}), "search", "unexpected argument"),
        (
            '<tool_call>[{"name": "search", "arguments": {"query": "a"}}, {"name": "answer"}]</tool_call>',
            "search",
            "several tool calls",
        ),
    ],
)
def test_flawed_json_turns(text, kind, error_part):
    act = parse_action(text, "json")
    assert act.tool == kind
    assert act.error is not None and error_part in act.error, act.error


def test_stop_strings():
    assert STOP_STRINGS == ["</search>", "</access>", "</answer>"]
    assert stop_strings("tags") == STOP_STRINGS and stop_strings("json") == JSON_STOP_STRINGS


def test_bad_inputs_never_raise():
    assert parse_action(None, "tags").tool == "invalid"  # type: ignore[arg-type]
    assert "unknown protocol" in parse_action("<answer>x</answer>", "yaml").error


PIECES = [
    *PROTOCOL_TAGS,
    "<tool_call>",
    "</tool_call>",
    "<",
    ">",
    "/",
    "#",
    "#2",
    "#-1",
    "#999999999",
    "{",
    "}",
    "[",
    "]",
    '"',
    ":",
    ",",
    '"name"',
    '"arguments"',
    '"parameters"',
    '"function"',
    '"search"',
    '"access"',
    '"answer"',
    '"query"',
    '"url"',
    '"page"',
    "null",
    "true",
    "1e999",
    "-0",
    "\\",
    "\\u0000",
    "```json",
    "```",
    "é",
    "字",
    "🙂",
    "\u202e",
    "\x00",
    "\ud800",
    " ",
    "\n",
    "\t",
    "Quillport",
    "https://w.example/wiki/X",
    "<find>",
    "</find>",
    '"find"',
    '"phrase"',
]


def random_turn(rng: random.Random) -> str:
    mode = rng.random()
    if mode < 0.6:
        return "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40)))
    if mode < 0.8:
        return "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(0, 200)))
    if mode < 0.9:
        obj = {
            "name": rng.choice(["search", "access", "answer", "find", "x", 1, None]),
            "arguments": rng.choice(
                [
                    {},
                    [],
                    "s",
                    1,
                    None,
                    {"query": rng.choice(["", "q", 1, [], None])},
                    {"url": "u", "page": rng.choice([0, -1, 2, 2.5, "3", None])},
                    {"answer": rng.choice(["a", 1, {}, None])},
                    {"phrase": rng.choice(["p", "", 2])},
                ]
            ),
        }
        text = json.dumps(obj)
        cut = rng.randint(0, len(text))
        return rng.choice([text, text[:cut], f"<tool_call>{text}</tool_call>", f"<tool_call>{text[:cut]}"])
    depth = rng.randint(1, 3000)
    return rng.choice(
        ["[" * depth, "{" * depth, '{"a":' * depth, "<search>" * depth, "<think>" * depth + "x"]
    )


WITH_FIND = ("search", "access", "answer", "find")


@pytest.mark.parametrize(
    "protocol, tools",
    [
        ("tags", DEFAULT_TOOLS),
        ("json", DEFAULT_TOOLS),
        ("tags", WITH_FIND),
        ("json", WITH_FIND),
        ("tags", ("search", "answer")),
    ],
)
def test_fuzz_never_raises(protocol, tools):
    rng = random.Random(1234)
    kinds = set()
    for _ in range(10_000):
        text = random_turn(rng)
        act = parse_action(
            text,
            protocol,
            tools=tools,
            require_think=rng.random() < 0.5,
            max_query_chars=rng.choice([1, 64, 512]),
        )
        assert act.tool in (*tools, "invalid")
        assert act.runs == (act.tool != "invalid")
        if act.tool == "invalid":
            assert act.error and act.args == {}
        else:
            main = act.args[TOOLS[act.tool].main]
            assert isinstance(main, str) and main == main.strip() and main
            assert set(act.args) == {a.name for a in TOOLS[act.tool].args}
        if act.tool == "access":
            assert 1 <= act.args["page"] <= 999_999
        if act.error is not None:
            assert len(act.error) <= 600 and not SURROGATE.search(act.error)
        kinds.add(act.tool)
    assert "invalid" in kinds and len(kinds) >= 2  # the generator reaches both valid and invalid turns


def test_huge_turn_is_fast():
    text = "<think>" + "x" * 10_000_000 + "</think><answer>a</answer>"
    assert parse_action(text, "tags", max_action_chars=20_000_000) == Action("answer", {"answer": "a"})
