import json

import pytest

from searchgym.config import ConfigError
from searchgym.env import BatchEnv, EnvConfig, SearchEnv, StepInfo, step_batch
from searchgym.env.observe import paginate
from searchgym.index.bm25s_engine import Bm25sEngine
from searchgym.index.build import engine_from_documents
from searchgym.types import Document, EvidenceStep, Task

URL = "https://searchgym.test/wiki/"
FILLER = " ".join(f"In year {1900 + i} the painter finished canvas number {i}." for i in range(60))
DOCS = [
    Document(
        "person/1",
        URL + "Varo_Kestrel",
        "Varo Kestrel",
        f"Varo Kestrel is a painter born in Quillport. {FILLER}",
    ),
    Document(
        "city/1", URL + "Quillport", "Quillport", "Quillport is a harbour city in the country of Marrowind."
    ),
    Document("country/1", URL + "Marrowind", "Marrowind", "Marrowind is a country with a long coast."),
    Document("person/2", URL + "Ilsa_Brandt", "Ilsa Brandt", "Ilsa Brandt is a sculptor born in Tessaly."),
    Document("city/2", URL + "Tessaly", "Tessaly", "Tessaly is a mountain town in Orvane."),
]
TASK = Task(
    id="t1",
    question="In which country is the birthplace of Varo Kestrel?",
    answer="Marrowind",
    aliases=("Republic of Marrowind",),
    type="chain",
    hops=2,
    level=1,
    split="test",
    evidence=(
        EvidenceStep("person/1", URL + "Varo_Kestrel", edge=1, relation="born_in"),
        EvidenceStep("city/1", URL + "Quillport", edge=2, relation="located_in"),
    ),
)
T = "<think>plan</think>"


@pytest.fixture(scope="module", params=["bm25s", "tantivy"])
def engine(request):
    return engine_from_documents(DOCS, backend=request.param)


def run(env, turns):
    out = []
    for turn in turns:
        out.append(env.step(turn))
        if out[-1].done:
            break
    return out


def test_solved_episode(engine):
    env = SearchEnv(engine, EnvConfig(page_chars=400))
    prompt = env.reset(TASK)
    assert TASK.question in prompt and "<search>" in prompt and "at most 8 turns" in prompt
    query = "Varo Kestrel born in Quillport country town"
    obs, reward, terminated, truncated, info = env.step(f"{T}<search>{query}</search>")
    hits = engine.search(query, 5)
    assert len(hits) == 5 and info.hit_urls == [h.url for h in hits]

    def shown(text):  # doc_chars = 300: cut to 299 characters plus an ellipsis
        return text if len(text) <= 300 else text[:299].rstrip() + "…"

    blocks = [f"[Doc {i}]({h.url}) {h.title}\n{shown(h.text)}" for i, h in enumerate(hits, 1)]
    assert obs == "\n<information>" + "\n\n".join(blocks) + "</information>\n"
    assert any(len(b.split("\n")[1]) == 300 for b in blocks)  # the long article was cut
    assert (reward, terminated, truncated, info.tool, info.args) == (
        0.0,
        False,
        False,
        "search",
        {"query": query},
    )
    assert info.surfaced_evidence == [URL + "Varo_Kestrel", URL + "Quillport"] and not info.opened_evidence
    assert info.format_ok and info.error is None and info.episode is None
    # the structured form of the observation: exactly the hits it shows, numbered
    assert [(h.rank, h.url, h.title, h.snippet) for h in info.shown_hits] == [
        (i, h.url, h.title, shown(h.text)) for i, h in enumerate(hits, 1)
    ]
    assert info.observation_chars == len(obs) and not info.observation_cut

    obs, reward, terminated, truncated, info = env.step(f"{T}<access>{URL}Varo_Kestrel#2</access>")
    pages = paginate(DOCS[0].text, 400)
    assert obs.startswith(f"\n<information>[Page 2 of {len(pages)}]({URL}Varo_Kestrel) Varo Kestrel\n")
    assert pages[1].strip() in obs and "ask for part 3" in obs
    assert info.opened_evidence and (info.url, info.page) == (URL + "Varo_Kestrel", 2)
    assert info.args == {"url": URL + "Varo_Kestrel", "page": 2}
    page = info.shown_page
    assert (page.url, page.title, page.part, page.parts, page.text) == (
        URL + "Varo_Kestrel",
        "Varo Kestrel",
        2,
        len(pages),
        pages[1].strip(),
    )

    env.step(f"{T}<access>{URL}Quillport</access>")
    step = env.step(f"{T}<answer> the Marrowind </answer>")
    assert (step.observation, step.reward, step.terminated, step.truncated, step.done) == (
        "",
        1.0,
        True,
        False,
        True,
    )
    ep = step.info.episode
    assert ep is env.summary and step.info.answer == "the Marrowind"
    assert ep.done_reason == "answer" and ep.scores == {"em": 1.0, "f1": 1.0, "cover_em": 1.0} and ep.success
    assert (ep.terminated, ep.truncated, ep.outcome, ep.reward, ep.answer) == (
        True,
        False,
        1.0,
        1.0,
        "the Marrowind",
    )
    assert (ep.turns, ep.searches, ep.accesses, ep.invalid_turns, ep.format_errors) == (4, 1, 2, 0, 0)
    assert ep.surfaced_recall == ep.opened_recall == ep.evidence_recall == 1.0
    with pytest.raises(RuntimeError, match="episode is over"):
        env.step("<answer>x</answer>")


def test_rewards_and_format_gate(engine):
    cases = [
        (EnvConfig(), f"{T}<answer>Marrowind Bay</answer>", pytest.approx(2 / 3)),
        (EnvConfig(reward="em"), f"{T}<answer>Marrowind Bay</answer>", 0.0),
        (EnvConfig(reward="cover_em"), f"{T}<answer>Marrowind Bay</answer>", 1.0),
        (EnvConfig(), "<answer>Marrowind</answer>", 0.0),  # missing <think>: gated
        (EnvConfig(require_think=False), "<answer>Marrowind</answer>", 1.0),
        (EnvConfig(format_fail_reward=-1.0), f"{T}<answer>Marrowind</answer> done", -1.0),
        (EnvConfig(format_gate=False), f"{T}<answer>Republic of Marrowind</answer> done", 1.0),
    ]
    for cfg, turn, expected in cases:
        env = SearchEnv(engine, cfg)
        env.reset(TASK)
        assert env.step(turn).reward == expected, (cfg, turn)


def test_invalid_and_env_errors_count_against_gate(engine):
    env = SearchEnv(engine, EnvConfig())
    env.reset(TASK)
    obs, _, terminated, truncated, info = env.step(f"{T}<access>{URL}Nowhere</access>")
    assert (
        obs
        == f"\n<information>Error: no page at {URL}Nowhere; open a URL from the search results.</information>\n"
    )
    assert not (terminated or truncated) and info.error == f"unknown URL {URL}Nowhere" and not info.format_ok
    assert info.shown_page is None and info.url == URL + "Nowhere"
    obs, _, _, _, info = env.step(f"{T}<access>{URL}Marrowind#3</access>")
    assert "has 1 part(s); there is no part 3" in obs and info.error and info.shown_page is None
    obs, _, _, _, info = env.step(f"{T}<search>a<search>b</search>")
    assert obs.startswith("\n<information>Error: invalid action: <search> inside <search>")
    assert info.tool == "invalid" and info.args == {}
    step = env.step(f"{T}<answer>Marrowind</answer>")
    ep = step.info.episode
    assert step.terminated and step.reward == 0.0 and ep.scores["em"] == 1.0 and ep.format_errors == 3
    assert ep.success and not ep.format_ok  # success is the answer's score, before the format gate


def test_episode_limits(engine):
    env = SearchEnv(engine, EnvConfig(max_turns=3, no_answer_reward=-0.5))
    env.reset(TASK)
    res = run(env, [f"{T}<search>Quillport</search>"] * 5)
    assert len(res) == 3 and res[-1][:4] == ("", -0.5, False, True)
    ep = res[-1].info.episode
    assert (ep.done_reason, ep.answer, ep.terminated, ep.truncated, ep.success) == (
        "max_turns",
        None,
        False,
        True,
        False,
    )

    env = SearchEnv(engine, EnvConfig(max_invalid_turns=2))
    env.reset(TASK)
    res = run(env, ["nonsense", f"{T}<search>Quillport</search>", "junk", "more junk", "x"])
    assert len(res) == 4 and res[-1].info.episode.done_reason == "invalid"  # two in a row, not two in total
    assert res[-1].truncated and not res[-1].terminated

    env = SearchEnv(engine, EnvConfig(max_invalid_turns=0, max_turns=20))
    env.reset(TASK)
    assert len(run(env, ["junk"] * 20)) == 20


def test_truncate(engine):
    env = SearchEnv(engine, EnvConfig(no_answer_reward=-0.25, open_weight=1.0))
    env.reset(TASK)
    env.step(f"{T}<access>{URL}Quillport</access>")
    ep = env.truncate("token_budget")
    assert env.done and env.steps[-1].episode is ep is env.summary
    assert (ep.done_reason, ep.answer, ep.scores["f1"], ep.reward, ep.truncated, ep.terminated) == (
        "token_budget",
        None,
        0.0,
        -0.25 + 0.5,
        True,
        False,
    )
    with pytest.raises(RuntimeError, match="already over"):
        env.truncate()


def test_shaping_rewards_evidence(engine):
    env = SearchEnv(engine, EnvConfig(surface_weight=0.2, open_weight=0.4))
    env.reset(TASK)
    info = env.step(f"{T}<search>Tessaly mountain</search>").info
    assert info.hit_urls and info.surfaced_evidence == []
    env.step(f"{T}<access>{URL}Varo_Kestrel</access>")
    _, reward, _, _, info = env.step(f"{T}<answer>Tessaly</answer>")
    ep = info.episode
    assert (ep.surfaced_recall, ep.opened_recall, ep.evidence_recall, ep.scores["f1"]) == (
        0.0,
        0.5,
        0.5,
        0.0,
    )
    assert reward == pytest.approx(0.4 * 0.5)

    env.reset(TASK)
    info = env.step(f"{T}<search>harbour city</search>").info
    assert info.surfaced_evidence == [URL + "Quillport"] and URL + "Quillport" in info.hit_urls
    _, reward, _, _, info = env.step(f"{T}<answer>Marrowind</answer>")
    assert info.episode.evidence_recall == 0.5 and reward == pytest.approx(1.0 + 0.2 * 0.5)
    assert info.episode.outcome == 1.0  # the outcome is unshaped


def test_json_protocol(engine):
    env = SearchEnv(engine, EnvConfig(protocol="json"))
    user = env.reset(TASK)
    assert user == f"Question: {TASK.question}"
    msgs = env.messages()
    assert [m["role"] for m in msgs] == ["system", "user"] and "<tool_call>" in msgs[0]["content"]
    assert [t["function"]["name"] for t in env.tools()] == ["search", "access", "answer"]
    assert env.stop_strings() == ["</tool_call>"]
    obs, _, _, _, info = env.step(
        '<tool_call>{"name": "search", "arguments": {"query": "Quillport"}}</tool_call>'
    )
    assert obs.startswith(f"[Doc 1]({URL}Quillport) Quillport\n") and info.format_ok
    obs, _, _, _, info = env.step('{"name": "access", "arguments": {"url": "' + URL + 'Quillport"}}')
    assert obs == f"[Page 1 of 1]({URL}Quillport) Quillport\n{DOCS[1].text}"
    obs, _, _, _, info = env.step("I think it is Marrowind.")
    assert obs.startswith("Error: invalid action: no tool call") and info.tool == "invalid"
    step = env.step('<tool_call>{"name": "answer", "arguments": {"answer": "Marrowind"}}</tool_call>')
    assert step.terminated and step.reward == 0.0 and step.info.episode.scores["em"] == 1.0  # gate closed


def test_batch_matches_sequential_and_is_deterministic(engine):
    turns = [
        [
            f"{T}<search>Varo Kestrel</search>",
            f"{T}<access>{URL}Quillport</access>",
            f"{T}<answer>Marrowind</answer>",
        ],
        [f"{T}<search>Tessaly town</search>", f"{T}<answer>Orvane</answer>"],
        [
            "junk",
            f"{T}<search>Quillport harbour</search>",
            f"{T}<search>Marrowind</search>",
            "<answer>x</answer>",
        ],
    ]
    tasks = [TASK, TASK, TASK]
    cfg = EnvConfig(max_turns=3)
    sequential = []
    for task, script in zip(tasks, turns, strict=True):
        env = SearchEnv(engine, cfg)
        sequential.append([env.reset(task), *run(env, script)])
    for _ in range(2):
        batch = BatchEnv(engine, cfg)
        got = [[p] for p in batch.reset(tasks)]
        step = 0
        while not batch.all_done:
            assert batch.active == [i for i, g in enumerate(got) if not (len(g) > 1 and g[-1].done)]
            actions = [turns[i][step] if i in batch.active else None for i in range(3)]
            for i, res in enumerate(batch.step(actions)):
                assert (res is None) == (actions[i] is None)
                if res is not None:
                    got[i].append(res)
            step += 1
        assert got == sequential
    assert [len(s) - 1 for s in sequential] == [3, 2, 3]


def test_batch_uses_one_batch_search(engine):
    calls = []

    class Counting(Bm25sEngine):
        def batch_search(self, queries, k=5):
            calls.append(list(queries))
            return super().batch_search(queries, k)

    counting = Counting.from_documents(DOCS)
    envs = [SearchEnv(counting) for _ in range(3)]
    for env in envs:
        env.reset(TASK)
    res = step_batch(
        envs,
        [
            f"{T}<search>Quillport</search>",
            f"{T}<access>{URL}Tessaly</access>",
            f"{T}<search>Orvane</search>",
        ],
    )
    assert calls == [["Quillport", "Orvane"]] and res[1].info.tool == "access"


def test_misuse_errors(engine):
    env = SearchEnv(engine)
    with pytest.raises(RuntimeError, match="reset"):
        env.step("<answer>x</answer>")
    batch = BatchEnv(engine)
    batch.reset([TASK])
    with pytest.raises(ValueError, match="pass None for finished"):
        batch.step([None])
    with pytest.raises(ValueError, match="1 episodes"):
        batch.step(["a", "b"])


def test_config(tmp_path):
    with pytest.raises(ConfigError, match="not one of"):
        EnvConfig(reward="bleu")
    with pytest.raises(ConfigError, match="not one of"):
        EnvConfig.from_dict({"protocol": "xml"})
    with pytest.raises(ConfigError, match="max_turns must be >= 1"):
        EnvConfig(max_turns=0)
    cfg = EnvConfig(max_turns=32, reward="em")
    cfg.to_yaml(tmp_path / "env.yaml")
    assert EnvConfig.from_yaml(tmp_path / "env.yaml") == cfg
    assert cfg.override(["topk=3"]).topk == 3


def test_custom_prompt(engine):
    env = SearchEnv(engine, EnvConfig(prompt="Q: {question} ({max_turns} turns, top {topk})"))
    assert env.reset(TASK) == f"Q: {TASK.question} (8 turns, top 5)"


FUZZ_SETS = [
    ("tags", ("search", "access", "answer")),
    ("json", ("search", "access", "answer")),
    ("tags", ("search", "access", "answer", "find")),
    ("json", ("search", "access", "answer", "find")),
    ("tags", ("search", "answer")),
]


@pytest.mark.parametrize("protocol, tools", FUZZ_SETS)
def test_fuzzed_episodes_stay_well_formed(engine, protocol, tools):
    import random

    rng = random.Random(99)
    pieces = [
        T,
        "<search>",
        "</search>",
        "<access>",
        "</access>",
        "<answer>",
        "</answer>",
        "<find>",
        "</find>",
        "<information>",
        "Quillport",
        "#2",
        "#0",
        URL + "Varo_Kestrel",
        URL + "Nope",
        '{"name": "search", "arguments": {"query": "Tessaly"}}',
        '{"name": "access", "arguments": {"url": "' + URL + 'Varo_Kestrel", "page": 3}}',
        '{"name": "find", "arguments": {"phrase": "canvas"}}',
        "<tool_call>",
        "</tool_call>",
        '{"name": "answer", "arguments": {"answer": "x"}}',
        "{",
        "字",
        "\ud800",
        " ",
        "\n",
    ]
    env = SearchEnv(engine, EnvConfig(protocol=protocol, tools=list(tools), max_turns=6, page_chars=200))
    kinds, reasons = set(), set()
    for _ in range(300):
        env.reset(TASK)
        while not env.done:
            obs, reward, terminated, truncated, info = env.step(
                "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
            )
            kinds.add(info.tool)
            assert info.format_ok == (info.error is None) and info.tool in (*tools, "invalid")
            json.dumps(info.to_dict(), ensure_ascii=False).encode("utf-8")  # always writable
            if terminated or truncated:
                ep = info.episode
                reasons.add(ep.done_reason)
                assert obs == "" and reward == ep.reward and ep.turns == len(env.steps)
                assert terminated == (ep.done_reason == "answer") != truncated
                assert 0.0 <= ep.evidence_recall <= 1.0 and StepInfo.from_dict(info.to_dict()) == info
            else:
                assert reward == 0.0 and obs and len(obs) <= env.cfg.max_observation_chars
                assert info.observation_chars == len(obs)
                if protocol == "tags":
                    assert obs.startswith("\n<information>") and obs.endswith("</information>\n")
    assert kinds == {*tools, "invalid"} and len(reasons) >= 2
