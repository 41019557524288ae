import random

import pytest

from searchgym.env import Action, EnvConfig, SearchEnv, StepInfo, episode_reward
from searchgym.env.rewards import REWARDS, cover_exact_match, exact_match, f1_score, format_ok
from searchgym.index.build import engine_from_documents
from searchgym.text import normalize_answer


@pytest.mark.parametrize(
    "raw, norm",
    [
        ("The Quillport", "quillport"),
        ("  Varo   KESTREL. ", "varo kestrel"),
        ("an apple, a pear & the fig!", "apple pear fig"),
        ("Ōmura-Kai", "ōmurakai"),
        ("1,987", "1987"),
        ("ﬁle", "file"),  # NFKC folds the ligature
        ("Theatre", "theatre"),  # articles only as whole words
    ],
)
def test_normalize_answer(raw, norm):
    assert normalize_answer(raw) == norm


def test_scores():
    assert exact_match("the Quillport.", ["Quillport"]) == 1.0
    assert exact_match("Quillport Bay", "Quillport") == 0.0
    assert exact_match("Q", ["Quillport", "Q"]) == 1.0  # aliases
    assert f1_score("Quillport Bay", "Quillport") == pytest.approx(2 / 3)
    assert f1_score("born in Quillport Bay", ["Bay Quillport", "Bay"]) == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert f1_score("Varo", "Kestrel") == 0.0
    assert cover_exact_match("It was Quillport, I think", "Quillport") == 1.0
    assert cover_exact_match("Quillporter", "Quillport") == 0.0  # whole words only
    assert cover_exact_match("", "Quillport") == 0.0
    assert set(REWARDS) == {"em", "f1", "cover_em"}


def test_format_ok():
    def info(error):
        return StepInfo(1, "access", {"url": "x", "page": 1}, error, error is None, [], False)

    assert format_ok([])
    assert format_ok([Action("search", {"query": "q"}), info(None)])
    assert not format_ok([Action("search", {"query": "q"}), info("unknown URL x")])
    assert not format_ok([Action("invalid", error="no action")])


def test_one_reward_function_for_every_ending():
    from test_env import DOCS, TASK, URL

    engine = engine_from_documents(DOCS)
    T = "<think>t</think>"
    endings = {  # (turns, how it ends)
        "answer": ([f"{T}<access>{URL}Quillport</access>", f"{T}<answer>Marrowind Bay</answer>"], None),
        "answer_gated": ([f"{T}<access>{URL}Quillport</access>", "<answer>Marrowind</answer>"], None),
        "max_turns": ([f"{T}<access>{URL}Quillport</access>", f"{T}<search>Quillport</search>"] * 2, None),
        "invalid": ([f"{T}<access>{URL}Varo_Kestrel</access>", "junk", "junk"], None),
        "token_budget": ([f"{T}<access>{URL}Quillport</access>"], "token_budget"),
        "token_budget_gated": ([f"{T}<access>{URL}Quillport</access>", "junk"], "token_budget"),
    }
    for shaping in ({}, {"open_weight": 1.0, "surface_weight": 0.5}):
        for gate in ({}, {"format_fail_reward": -1.0}, {"format_gate": False}):
            cfg = EnvConfig(max_turns=4, max_invalid_turns=2, no_answer_reward=-0.1, **shaping, **gate)
            for name, (turns, stop) in endings.items():
                env = SearchEnv(engine, cfg)
                env.reset(TASK)
                steps = [env.step(t) for t in turns if not env.done]
                ep = env.truncate(stop) if stop else steps[-1].info.episode
                assert ep.done_reason == (stop or name.removesuffix("_gated")), name
                expected = episode_reward(cfg, ep.outcome, ep.surfaced_recall, ep.opened_recall, ep.format_ok)
                assert ep.reward == expected, (name, shaping, gate)
                if not stop:
                    assert steps[-1].reward == ep.reward
                if shaping and ep.format_ok:
                    assert ep.reward == pytest.approx(
                        ep.outcome + 1.0 * ep.opened_recall + 0.5 * ep.surfaced_recall
                    )
                if gate.get("format_fail_reward") and not ep.format_ok:
                    assert ep.reward == -1.0
                assert ep.outcome == (ep.scores["f1"] if ep.answer is not None else -0.1)


def test_success_is_the_unshaped_ungated_answer_score():
    from test_env import DOCS, TASK

    engine = engine_from_documents(DOCS)

    def summary(answer, **cfg):
        env = SearchEnv(engine, EnvConfig(**{"require_think": False, **cfg}))
        env.reset(TASK)
        return env.step(f"<answer>{answer}</answer>").info.episode

    assert summary("Marrowind").success and not summary("Marrowind Bay").success  # default: em >= 1
    assert summary("Marrowind Bay", success_metric="f1", success_threshold=0.5).success  # f1 = 2/3
    assert not summary("Marrowind Bay", success_metric="f1", success_threshold=0.7).success
    assert summary("Marrowind Bay", success_metric="cover_em").success
    gated = summary("Marrowind", require_think=True)  # missing <think>: reward 0, still a correct answer
    assert gated.reward == 0.0 and not gated.format_ok and gated.success
    shaped = summary("Orvane", open_weight=5.0, surface_weight=5.0, format_gate=False)
    assert not shaped.success
    env = SearchEnv(engine, EnvConfig(no_answer_reward=1.0))
    env.reset(TASK)
    ep = env.truncate("token_budget")
    assert ep.outcome == ep.reward == 1.0 and not ep.success  # no answer is never a success


WORDS = [
    "Quillport",
    "the",
    "a",
    "Varo",
    "Kestrel",
    "Bay",
    "1987",
    "Ōmura",
    "字",
    ",",
    ".",
    "-",
    "'",
    " ",
    "AN",
]


def random_text(rng: random.Random) -> str:
    if rng.random() < 0.3:
        return "".join(chr(rng.randint(0, 0x2FFFF)) for _ in range(rng.randint(0, 30)))
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 6)))


def test_reward_properties():
    rng = random.Random(7)
    for _ in range(3000):
        pred, gold = random_text(rng), random_text(rng)
        norm = normalize_answer(pred)
        assert normalize_answer(norm) == norm  # idempotent
        em, f1, cover = exact_match(pred, gold), f1_score(pred, gold), cover_exact_match(pred, gold)
        assert 0.0 <= f1 <= 1.0 and em in (0.0, 1.0) and cover in (0.0, 1.0)
        if em:
            assert f1 == 1.0 and cover == 1.0
        if f1 == 1.0:  # same bag of words
            assert sorted(norm.split()) == sorted(normalize_answer(gold).split())
        assert f1 == pytest.approx(f1_score(gold, pred))  # token F1 is symmetric
        assert exact_match(pred, pred) == 1.0 and f1_score(pred, pred) == 1.0
        assert f1_score(pred, [gold, pred]) == 1.0  # best over golds
