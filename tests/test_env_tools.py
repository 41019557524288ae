"""The tool registry: everything about a tool is generated from its one declaration; tool subsets, the opt-in
`find` tool, the Search-R1 preset, and typed actions that are checked like JSON calls, never re-parsed."""

from __future__ import annotations

import json
import re

import pytest

from searchgym.config import ConfigError
from searchgym.env import (
    DEFAULT_TOOLS,
    TOOLS,
    Action,
    EnvConfig,
    SearchEnv,
    parse_action,
    prompt_messages,
    protocol_tags,
    render_prompt,
    stop_strings,
    tool_schemas,
)
from searchgym.env.observe import paginate
from searchgym.index.build import engine_from_documents
from test_env import DOCS, TASK, URL

T = "<think>plan</think>"
WITH_FIND = ["search", "access", "answer", "find"]


@pytest.fixture(scope="module")
def engine():
    return engine_from_documents(DOCS)


def test_every_protocol_artefact_comes_from_the_registry():
    # adding a tool to the active set adds it everywhere, in registry order
    assert protocol_tags(WITH_FIND) == (
        "<think>", "</think>", "<search>", "</search>", "<access>", "</access>", "<answer>", "</answer>",
        "<find>", "</find>", "<information>", "</information>",
    )  # fmt: skip
    assert stop_strings("tags", WITH_FIND) == ["</search>", "</access>", "</answer>", "</find>"]
    assert stop_strings("tags", ["answer", "search"]) == ["</search>", "</answer>"]
    assert stop_strings("json", WITH_FIND) == ["</tool_call>"]
    schemas = tool_schemas(WITH_FIND)
    assert [s["function"]["name"] for s in schemas] == WITH_FIND
    access = schemas[1]["function"]["parameters"]
    assert access["required"] == ["url"] and access["properties"]["page"]["type"] == "integer"
    assert [s["function"]["name"] for s in tool_schemas()] == list(DEFAULT_TOOLS)
    for protocol in ("tags", "json"):
        cfg = EnvConfig(protocol=protocol, tools=WITH_FIND)
        text = "\n".join(m["content"] for m in prompt_messages(TASK, cfg))
        assert all(name in text for name in WITH_FIND)
        default = "\n".join(m["content"] for m in prompt_messages(TASK, EnvConfig(protocol=protocol)))
        assert "find" not in default and "access" in default


def test_tag_and_json_forms_of_every_tool_parse_to_the_same_action():
    for tool in TOOLS.values():
        main = {"search": "Quillport", "access": URL + "Quillport", "answer": "Marrowind", "find": "harbour"}
        tag = parse_action(f"<{tool.name}> {main[tool.name]} </{tool.name}>", "tags", tools=WITH_FIND)
        call = json.dumps({"name": tool.name, "arguments": {tool.main: main[tool.name]}})
        assert tag == parse_action(f"<tool_call>{call}</tool_call>", "json", tools=WITH_FIND)
        assert tag.runs and tag.args[tool.main] == main[tool.name] and tag.error is None


def test_find_reads_the_article_opened_last(engine):
    env = SearchEnv(engine, EnvConfig(tools=WITH_FIND, require_think=False, doc_chars=40))
    env.reset(TASK)
    step = env.step("<find>canvas</find>")
    assert "open an article with access before find" in step.observation and step.info.error is not None
    env.step(f"<access>{URL}Varo_Kestrel</access>")
    step = env.step("<find>Canvas number 1</find>")  # case-insensitive
    matching = [s for s in DOCS[0].text.split(". ") if "canvas number 1" in s.lower()]
    assert len(matching) > 5
    lines = step.info.shown_lines
    assert len(lines) == 5 and all(len(x) <= 40 for x in lines) and step.info.format_ok
    assert f"{len(matching)} line(s) contain 'Canvas number 1'" in step.observation
    assert (
        f"({len(matching) - 5} more not shown)" in step.observation and step.info.url == URL + "Varo_Kestrel"
    )
    assert not step.info.opened_evidence  # only access opens; find reads what was opened
    env.step(f"<access>{URL}Quillport</access>")
    step = env.step("<find>harbour</find>")
    assert step.info.shown_lines == [DOCS[1].text[:39] + "…"] and step.info.url == URL + "Quillport"
    assert "0 line(s)" in env.step("<find>volcano</find>").observation
    assert env.step("<answer>Marrowind</answer>").reward == 0.0  # the early find closed the format gate


def test_find_is_opt_in(engine):
    env = SearchEnv(engine, EnvConfig(require_think=False))
    env.reset(TASK)
    step = env.step("<find>canvas</find>")
    assert step.info.tool == "invalid" and "<find> is not a tool here" in step.info.error
    json_env = SearchEnv(engine, EnvConfig(protocol="json"))
    json_env.reset(TASK)
    step = json_env.step('{"name": "find", "arguments": {"phrase": "x"}}')
    assert "find is not a tool here; the tools are search, access, answer" in step.info.error


def test_searchr1_preset_has_no_access(engine):
    cfg = EnvConfig.preset("searchr1")
    assert (cfg.protocol, cfg.tools, cfg.prompt_style, cfg.require_think) == (
        "tags",
        ["search", "answer"],
        "searchr1",
        True,
    )
    prompt = render_prompt(TASK, cfg)
    assert prompt.endswith(f"Question: {TASK.question}\n") and "<search> query </search>" in prompt
    assert "<access>" not in prompt and "<answer>" in prompt and "<information>" in prompt
    env = SearchEnv(engine, cfg)
    assert env.reset(TASK) == prompt and env.stop_strings() == ["</search>", "</answer>"]
    assert [t["function"]["name"] for t in env.tools()] == ["search", "answer"]
    step = env.step(f"{T}<access>{URL}Quillport</access>")
    assert step.info.tool == "invalid"
    assert step.info.error.startswith("<access> is not a tool here; end the turn with <search> or <answer>")
    assert env.step(f"{T}<search>Quillport</search>").info.tool == "search"
    assert env.step(f"{T}<answer>Marrowind</answer>").reward == 0.0  # the access turn was a format error
    assert EnvConfig.preset("json").protocol == "json" and EnvConfig.preset("tag") == EnvConfig()
    assert EnvConfig.preset("searchr1", max_turns=4).max_turns == 4


def searchr1_extract(solution: str) -> str | None:
    """Search-R1's qa_em.extract_solution rule (verl/utils/reward_score/qa_em.py): every
    `<answer>(.*?)</answer>` match of prompt + response; None with fewer than two, else the last one, stripped."""
    matches = re.findall(r"<answer>(.*?)</answer>", solution, re.DOTALL)
    return matches[-1].strip() if len(matches) > 1 else None


def test_searchr1_prompt_holds_exactly_one_answer_example():
    prompt = render_prompt(TASK, EnvConfig.preset("searchr1"))
    assert len(re.findall(r"<answer>(.*?)</answer>", prompt, re.DOTALL)) == 1
    response = (
        f"{T}<search> Quillport </search>\n<information>x</information>\n{T}<answer> Marrowind </answer>"
    )
    assert searchr1_extract(prompt + response) == "Marrowind"
    assert searchr1_extract(prompt + f"{T}<search> Quillport </search>") is None  # no answer scores 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"tools": ["search", "browse", "answer"]}, "unknown tool(s) ['browse']"),
        ({"tools": ["search", "access"]}, "must include 'answer'"),
        ({"prompt_style": "searchr1"}, "describes exactly the tools ['search', 'answer']"),
        ({"prompt_style": "searchr1", "protocol": "json", "tools": ["search", "answer"]}, "for protocol(s)"),
        ({"prompt_style": "chatty"}, "not one of"),
        ({"success_metric": "bleu"}, "not one of"),
        ({"success_threshold": 0.0}, "must be in (0, 1]"),
        ({"max_observation_chars": 100}, "must be >= 256"),
    ],
)
def test_config_refuses_bad_tool_sets(kwargs, message):
    with pytest.raises(
        ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
    ):
        EnvConfig(**kwargs)
    with pytest.raises(ConfigError, match="unknown env preset"):
        EnvConfig.preset("asearcher")


def test_typed_actions_match_text_turns_and_are_checked(engine):
    def play(actions, protocol="tags"):
        env = SearchEnv(engine, EnvConfig(protocol=protocol, require_think=False))
        env.reset(TASK)
        return [env.step(a) for a in actions]

    typed = play([Action("search", {"query": "Quillport"}), Action("access", {"url": URL + "Quillport#1"})])
    text = play(["<search>Quillport</search>", f"<access>{URL}Quillport</access>"])
    assert typed == text  # same observations, rewards and infos (page 1 filled in either way)
    assert typed[1].info.args == {"url": URL + "Quillport", "page": 1}
    cases = [
        (Action("search", {"query": 3}), "argument 'query' of search must be a string"),
        (Action("search", {}), "search needs the argument 'query'"),
        (Action("access", {"url": "u", "page": True}), "must be an integer"),
        (Action("access", {"url": "u", "page": 0}), "page 0 does not exist; pages start at 1"),
        (Action("access", {"url": "u", "page": 10**5000}), "page is above the limit 999999"),
        (Action("access", {"url": "u", "page": -(10**5000)}), "page does not exist"),
        (Action("browse", {"url": "u"}), "unknown tool 'browse'"),
        (Action("find", {"phrase": "x"}), "find is not a tool here"),
        (Action("search", {"query": "  "}), "empty query"),
        (Action("search", {"query": "q" * 600}), "the limit is 512"),
        (Action("invalid", {}, "the model timed out"), "the model timed out"),
    ]
    for action, message in cases:
        (step,) = play([action])
        assert step.info.tool == "invalid" and message in step.info.error, (action, step.info.error)
        assert len(step.observation) < 300
    (step,) = play([Action("search", {"query": "Quillport", "k": 9})])
    assert step.info.tool == "search" and "unexpected argument(s) ['k'] for search" in step.info.error
    (step,) = play([Action("search", {"query": "Quillport"}, "a caller's note")])
    assert step.info.error == "a caller's note" and not step.info.format_ok  # the action's own error is kept


def test_prompts_are_pure_functions_of_task_and_config():
    cfg = EnvConfig(max_turns=3, topk=2)
    assert render_prompt(TASK, cfg) == render_prompt(TASK, cfg)
    assert "top 2 articles" in render_prompt(TASK, cfg) and "at most 3 turns" in render_prompt(TASK, cfg)
    custom = EnvConfig(prompt="{question}\n{tools}")
    lines = render_prompt(TASK, custom).splitlines()
    assert (
        lines[0] == TASK.question and lines[1].startswith("<search> keywords </search>") and len(lines) == 4
    )
    msgs = prompt_messages(TASK, EnvConfig(protocol="json"))
    assert [m["role"] for m in msgs] == ["system", "user"] and msgs[1][
        "content"
    ] == f"Question: {TASK.question}"
    assert "- access(url: string, page?: integer): Open an article" in msgs[0]["content"]


def test_page_numbers_in_tag_form_and_json_agree(engine):
    env = SearchEnv(engine, EnvConfig(page_chars=400, require_think=False))
    env.reset(TASK)
    pages = paginate(DOCS[0].text, 400)
    last = env.step(f"<access>{URL}Varo_Kestrel#{len(pages)}</access>").info.shown_page
    assert (last.part, last.parts, last.text) == (len(pages), len(pages), pages[-1].strip())
    assert "ask for part" not in env.steps[-1].to_dict()["shown_page"]["text"]
