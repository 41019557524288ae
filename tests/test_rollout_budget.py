"""An episode cut by the rollout's token budget ends through the env's own truncation path: the same summary,
reward shaping and format gate as any other ending (regression test for the review's Appendix A, where the budget
path had its own summary and scored 0.0 instead of 1.0, and 0.0 instead of -1.0)."""

from __future__ import annotations

import pytest

from searchgym.env import PROTOCOL_TAGS, EnvConfig, SearchEnv
from searchgym.index.build import engine_from_documents
from searchgym.models.tiny import train_tokenizer
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.generate import Generation, Generator
from searchgym.types import Document, EvidenceStep, Task

DOC = Document("a", "u://a", "A", "A is a city. " * 50, "a")
TASK = Task("t", "q?", "A", (), "chain", 1, 1, "test", (EvidenceStep("a", "u://a"),))


class Scripted(Generator):
    """An agent that writes the same turn every time (real token ids of a real tokenizer)."""

    def __init__(self, tokenizer, turn: str):
        self.ids = tokenizer(turn, add_special_tokens=False)["input_ids"]

    def generate(self, prompts, params, max_new_tokens=None):
        return [Generation(list(self.ids), [0.0] * len(self.ids), "stop") for _ in prompts]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(
        [DOC.text, "no action here"] * 10, vocab_size=300, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )


def run_to_budget(tok, cfg: EnvConfig, turn: str):
    engine = engine_from_documents([DOC])
    (tr,) = rollout(
        [TASK], lambda: SearchEnv(engine, cfg), Scripted(tok, turn), tok, RolloutConfig(max_total_tokens=200)
    )
    env = SearchEnv(engine, cfg)  # the same turn, stepped by hand and truncated by hand
    env.reset(TASK)
    env.step(turn)
    return tr, env.truncate("token_budget")


def test_token_budget_keeps_reward_shaping(tok):
    turn = "<think>x</think><access>u://a</access>"
    tr, by_hand = run_to_budget(tok, EnvConfig(open_weight=1.0, no_answer_reward=0.0), turn)
    assert tr.episode.done_reason == "token_budget" and tr.episode.opened_recall == 1.0
    assert tr.reward == tr.episode.reward == by_hand.reward == 1.0  # the old budget path gave 0.0
    assert tr.episode == by_hand and tr.steps[-1].episode is tr.episode
    assert tr.episode.truncated and not tr.episode.terminated and not tr.episode.success


def test_token_budget_keeps_the_format_gate(tok):
    cfg = EnvConfig(format_fail_reward=-1.0, max_invalid_turns=0)
    tr, by_hand = run_to_budget(tok, cfg, "no action here " * 8)
    assert len(tr.steps) > 1 and not tr.episode.format_ok and tr.episode.done_reason == "token_budget"
    assert tr.reward == by_hand.reward == -1.0  # the old budget path gave 0.0
    assert tr.episode.turns == len(tr.steps) and tr.episode.invalid_turns == len(tr.steps)
