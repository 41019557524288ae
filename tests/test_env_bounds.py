"""Bounded observations (issue 16): every observation, error ones included, fits `max_observation_chars`; an error
never repeats more than a short cut of the model's text and lists each problem once; infos stay UTF-8 JSON."""

from __future__ import annotations

import json

import pytest

from searchgym.env import PROTOCOL_TAGS, Action, EnvConfig, SearchEnv
from searchgym.env.observe import CUT_MARK, ECHO_CHARS
from searchgym.index.build import engine_from_documents
from searchgym.models.tiny import train_tokenizer
from test_env import DOCS, TASK, URL


@pytest.fixture(scope="module")
def engine():
    return engine_from_documents(DOCS)


def first_step(engine, turn, **cfg):
    env = SearchEnv(engine, EnvConfig(**cfg))
    env.reset(TASK)
    return env.step(turn)


def writable(info) -> bytes:
    return json.dumps(info.to_dict(), ensure_ascii=False).encode("utf-8")


def test_a_16k_malformed_turn_gives_a_short_observation(engine):
    turn = ("</think>" * 2048)[:16384]  # the longest turn that is still parsed: 2,048 copies of one problem
    step = first_step(engine, turn)
    assert len(turn) == 16384 and step.info.tool == "invalid"
    assert len(step.observation) < 300  # was 32,851 characters: the problem repeated 2,048 times
    assert step.info.error.count("stray </think>") == 1 and "(2048 times)" in step.info.error
    soup = "".join(f"</{t}>" for t in ("think", "search", "access", "answer")) + "<information></information>"
    step = first_step(engine, soup * 500)
    assert "more problem(s)" not in step.info.error and len(step.observation) < 500
    step = first_step(engine, "".join(f"<think>a</think><think>{t}" for t in PROTOCOL_TAGS) * 50)
    assert len(step.info.error) <= 600 and len(step.observation) <= 700


def test_model_written_tags_do_not_multiply_observation_tokens(engine):
    tok = train_tokenizer(
        [d.text for d in DOCS] * 20, vocab_size=400, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )

    def tokens(turn):
        return len(tok(first_step(engine, turn).observation, add_special_tokens=False)["input_ids"])

    forty, four_hundred = tokens("<information>" * 40), tokens("<information>" * 400)
    assert len(tok("<information>" * 40, add_special_tokens=False)["input_ids"]) == 40
    assert forty < 160  # was 1,403 tokens of error text, more than the demo's whole 1,200-token budget
    assert four_hundred <= forty + 2  # only the count's digits grow
    obs = first_step(engine, "<information>" * 40).observation
    assert obs.count("<information>") == 1 and obs.count("</information>") == 1  # no tag inside the block


def test_a_4000_digit_page_is_not_echoed(engine):
    digits = "9" * 4000
    turn = '{"name": "access", "arguments": {"url": "' + URL + 'Quillport", "page": ' + digits + "}}"
    step = first_step(engine, turn, protocol="json")
    assert step.info.tool == "invalid" and "above the limit 999999" in step.observation
    assert "9999999" not in step.observation and len(step.observation) < 100
    writable(step.info)


def test_model_text_in_errors_is_cut(engine):
    long_url = URL + "x" * 480
    step = first_step(engine, f"<think>a</think><access>{long_url}</access>")
    assert step.info.error.startswith("unknown URL") and long_url not in step.observation
    assert long_url[: ECHO_CHARS - 1] in step.observation and len(step.observation) < 300
    step = first_step(engine, '{"name": "' + "t" * 5000 + '", "arguments": {}}', protocol="json")
    assert "t" * 41 not in step.observation
    keys = ", ".join(f'"{"k" * 300}{i}": 1' for i in range(50))
    step = first_step(
        engine, '{"name": "search", "arguments": {"query": "Quillport", ' + keys + "}}", protocol="json"
    )
    assert step.info.tool == "search" and len(step.info.error) < 400


@pytest.mark.parametrize("protocol", ["tags", "json"])
def test_every_observation_fits_the_budget(engine, protocol):
    budget = 300
    env = SearchEnv(engine, EnvConfig(protocol=protocol, max_observation_chars=budget, require_think=False))
    env.reset(TASK)
    access = (
        f"<access>{URL}Varo_Kestrel</access>"
        if protocol == "tags"
        else Action("access", {"url": URL + "Varo_Kestrel"})
    )
    step = env.step(access)
    assert (
        len(step.observation) == budget
        and step.info.observation_cut
        and step.info.observation_chars == budget
    )
    end = CUT_MARK + ("</information>\n" if protocol == "tags" else "")
    assert step.observation.endswith(end) and step.info.shown_page is not None
    search = env.step(Action("search", {"query": "Quillport harbour city country"}))
    assert len(search.observation) <= budget and search.info.observation_cut
    full = first_step(engine, f"<access>{URL}Varo_Kestrel</access>", require_think=False, protocol="tags")
    assert not full.info.observation_cut and len(full.observation) <= EnvConfig().max_observation_chars


def test_lone_surrogates_are_replaced_so_infos_are_utf8_json(engine):
    env = SearchEnv(engine, EnvConfig(require_think=False))
    env.reset(TASK)
    step = env.step("<think>\ud800</think><search>Quillport \udfff</search>")
    assert step.info.args == {"query": "Quillport \ufffd"}
    writable(step.info)
    step = env.step(Action("access", {"url": URL + "\ud83d"}))
    assert "\ufffd" in step.info.url and "\ufffd" in step.observation
    writable(step.info)
    step = env.step("<answer>Marrowind\ud800</answer>")
    assert step.info.answer == "Marrowind\ufffd" and step.info.episode.scores["em"] == 1.0
    writable(step.info)
    json.dumps(step.info.episode.to_dict(), ensure_ascii=False).encode("utf-8")
