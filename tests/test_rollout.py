"""Real multi-turn rollouts with a tiny transformers model: token-level invariants."""

from __future__ import annotations

import json

import torch

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.env.records import EpisodeSummary, StepInfo
from searchgym.rollout.adapters import to_trl, to_verl
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.hf import HFGenerator
from test_rollout_common import TASKS, engine, tiny_agent


class RecordingGenerator(HFGenerator):
    """The real HF generator, remembering every batch of prompts it was given."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.calls: list[list[list[int]]] = []

    def generate(self, prompts, params, max_new_tokens=None):
        self.calls.append([list(p) for p in prompts])
        return super().generate(prompts, params, max_new_tokens)


def env_factory(**kw):
    return lambda: SearchEnv(engine(), EnvConfig(max_turns=4, **kw))


def segments(mask: list[int]) -> list[tuple[int, int, int]]:
    """(value, start, end) runs of the mask."""
    runs, start = [], 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((mask[start], start, i))
            start = i
    return runs


def test_greedy_agent_searches_reads_and_answers_with_exact_tokens():
    model, tok = tiny_agent()
    gen = RecordingGenerator(model, tok)
    trajs = rollout(TASKS, env_factory(), gen, tok, RolloutConfig(max_new_tokens=40, temperature=0))
    for task, tr in zip(TASKS, trajs, strict=True):
        assert (
            tr.reward == tr.episode.reward == 1.0 and tr.episode.answer == task.answer and tr.episode.success
        )
        assert [s.tool for s in tr.steps] == ["search", "answer"] and tr.steps[-1].episode is tr.episode
        assert tr.steps[0].surfaced_evidence == [task.evidence_urls[0]]
        # model turn, observation, model turn: the mask is 0 exactly on the observation's tokens
        runs = segments(tr.env_mask)
        assert [r[0] for r in runs] == [1, 0, 1]
        _, a, b = runs[1]
        obs = tr.turns[0]["observation"]
        assert (
            obs.startswith("\n<information>")
            and tr.completion_ids[a:b] == tok(obs, add_special_tokens=False)["input_ids"]
        )
        assert all(lp == 0.0 for lp in tr.logprobs[a:b])
        assert tok.decode(tr.completion_ids[: runs[0][2]]) == tr.turns[0]["action"]
        assert tr.prompt_ids == tok(SearchEnv(engine(), EnvConfig(max_turns=4)).reset(task))["input_ids"]


def test_ids_are_what_the_model_saw_and_logprobs_match_a_forward_pass():
    model, tok = tiny_agent()
    gen = RecordingGenerator(model, tok)
    cfg = RolloutConfig(max_new_tokens=24, temperature=0.8, top_p=0.95, seed=3)
    trajs = rollout(TASKS * 2, env_factory(max_invalid_turns=0), gen, tok, cfg)
    last_input = {}
    for call in gen.calls:  # the last prompt each episode was given (prompts are unique per episode here)
        for p in call:
            for i, tr in enumerate(trajs):
                if (
                    p[: len(tr.prompt_ids)] == tr.prompt_ids
                    and tr.prompt_ids + tr.completion_ids[: len(p) - len(tr.prompt_ids)] == p
                ):
                    last_input[i] = p
    for i, tr in enumerate(trajs):
        full = tr.prompt_ids + tr.completion_ids
        last_turn = segments(tr.env_mask)[-1]
        assert last_turn[0] == 1
        assert last_input[i] == full[: len(tr.prompt_ids) + last_turn[1]]
        with torch.no_grad():
            logits = model(torch.tensor([full])).logits[0].float()
        logp = torch.log_softmax(logits / cfg.temperature, -1)[len(tr.prompt_ids) - 1 : -1]
        recomputed = logp.gather(-1, torch.tensor(tr.completion_ids)[:, None]).squeeze(-1)
        mask = torch.tensor(tr.env_mask, dtype=torch.bool)
        assert torch.allclose(recomputed[mask], torch.tensor(tr.logprobs)[mask], atol=1e-4)
        assert torch.all(torch.tensor(tr.logprobs)[~mask] == 0)


def test_finished_episodes_leave_the_batch():
    model, tok = tiny_agent()
    gen = RecordingGenerator(model, tok)
    turns = iter([1, 2, 3, 4])

    def factory():  # four episodes that end after 1, 2, 3 and 4 turns
        return SearchEnv(engine(), EnvConfig(max_turns=next(turns), max_invalid_turns=0, protocol="tags"))

    bad = [t.__class__(**{**t.__dict__, "question": "x"}) for t in TASKS[:1]] * 4
    # two tokens can never hold a valid action (open tag, argument, close tag), so no episode ends early
    trajs = rollout(bad, factory, gen, tok, RolloutConfig(max_new_tokens=2, temperature=1.0))
    assert [len(c) for c in gen.calls] == [4, 3, 2, 1]
    assert [len(t.turns) for t in trajs] == [1, 2, 3, 4]
    assert all(t.episode.done_reason == "max_turns" and t.episode.truncated for t in trajs)


def test_token_budget_ends_the_episode_without_answer():
    model, tok = tiny_agent()
    cfg = RolloutConfig(max_new_tokens=40, max_total_tokens=30, temperature=0)
    (tr,) = rollout(TASKS[:1], env_factory(), HFGenerator(model, tok), tok, cfg)
    assert tr.episode.done_reason == "token_budget" and tr.reward == 0.0 and tr.episode.truncated
    assert len(tr.completion_ids) <= 30 and set(tr.env_mask) == {1}


def test_json_protocol_appends_the_chat_template_delta():
    model, tok = tiny_agent()
    factory = env_factory(protocol="json", max_invalid_turns=0)
    cfg = RolloutConfig(max_new_tokens=12, temperature=0)
    trajs = rollout(TASKS[:2], factory, HFGenerator(model, tok), tok, cfg)
    for task, tr in zip(TASKS[:2], trajs, strict=True):
        env = factory()
        env.reset(task)
        prompt = tok.apply_chat_template(
            env.messages(), tools=env.tools(), add_generation_prompt=True, tokenize=False
        )
        assert tr.prompt_ids == tok(prompt, add_special_tokens=False)["input_ids"]
        assert len(tr.turns) == 4 and [s.tool for s in tr.steps] == ["invalid"] * 4
        # the whole sequence reads as the chat template's rendering of the conversation
        messages = env.messages()
        for turn in tr.turns[:-1]:
            messages += [
                {"role": "assistant", "content": turn["action"]},
                {"role": "tool", "content": turn["observation"]},
            ]
        rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        seen = tok.decode(tr.prompt_ids + tr.completion_ids, skip_special_tokens=False)
        assert seen == rendered + tr.turns[-1]["action"]


def test_adapters_have_trl_and_verl_shapes():
    model, tok = tiny_agent()
    trajs = rollout(
        TASKS, env_factory(), HFGenerator(model, tok), tok, RolloutConfig(max_new_tokens=40, temperature=0)
    )
    out = to_trl(trajs)
    assert {"prompt_ids", "completion_ids", "logprobs", "env_mask"} <= set(out)
    for key in ("completion_ids", "logprobs", "env_mask"):
        assert [len(x) for x in out[key]] == [len(t.completion_ids) for t in trajs]
    assert out["env_reward"] == [1.0, 1.0, 1.0] and out["env_info"][0]["answer"] == "Mira Tel"
    assert out["env_info"] == [t.episode.to_dict() for t in trajs] and out["env_info"][0]["success"]
    row = trajs[0].to_dict()
    json.dumps(row, ensure_ascii=False).encode("utf-8")
    assert row["episode"] == out["env_info"][0] and [s["tool"] for s in row["steps"]] == ["search", "answer"]
    assert StepInfo.from_dict(row["steps"][0]) == trajs[0].steps[0]
    assert EpisodeSummary.from_dict(row["episode"]) == trajs[0].episode
    # one AgentLoopOutput's fields per sample (verl validates them in test_integrations_verl.py)
    verl = to_verl(trajs)
    assert [v["response_ids"] for v in verl] == out["completion_ids"]
    assert [v["response_mask"] for v in verl] == out["env_mask"]
    assert [v["response_logprobs"] for v in verl] == out["logprobs"]
    assert [v["reward_score"] for v in verl] == out["env_reward"]
    assert [v["extra_fields"]["success"] for v in verl] == [1.0, 1.0, 1.0]
