"""Tiny tokenizer and model, local / GGUF loading, and the HF generator's stop handling."""

from __future__ import annotations

import pytest
import torch

from searchgym.config import ConfigError
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.models.load import load_model_and_tokenizer, resolve_model_path, smollm2_gguf_path
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.rollout.generate import SamplingParams
from searchgym.rollout.hf import HFGenerator

TEXTS = [f"Zorvan {i} was founded by Mira Tel in {1800 + i}. Ostra is a port." for i in range(200)]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(TEXTS, vocab_size=400, special_tokens=PROTOCOL_TAGS)


def test_protocol_tags_are_single_tokens_kept_on_decode(tok):
    text = "<think>hm</think><search> Zorvan founder </search>"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    for tag in PROTOCOL_TAGS:
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert (
        tok.decode([tok.eos_token_id, *ids], skip_special_tokens=True) == text
    )  # eos is special, tags are not
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False
    )
    assert chat == "<|user|>\nhi<|eos|>\n<|assistant|>\n"


def test_presets_sizes_and_save_load_roundtrip(tok, tmp_path):
    big_tok = train_tokenizer(TEXTS * 5 + [" ".join(map(str, range(i, i + 50))) for i in range(2000)], 4096)
    size = {
        name: sum(p.numel() for p in tiny_llama(big_tok, TinyModelConfig.preset(name)).parameters())
        for name in ("student", "teacher", "demo-student", "demo-teacher")
    }
    assert 2e6 <= size["student"] <= 5e6 < size["teacher"]
    assert size["demo-student"] < size["demo-teacher"] < size["student"]
    assert TinyModelConfig.preset("student") == TinyModelConfig()  # the defaults are the student preset
    edited = TinyModelConfig.preset("teacher")
    edited.num_layers = 1
    assert TinyModelConfig.preset("teacher").num_layers == 8  # a copy, not the table's entry
    with pytest.raises(ConfigError, match="unknown tiny model preset"):
        TinyModelConfig.preset("huge")
    model = tiny_llama(tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1))
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    loaded, tok2 = load_model_and_tokenizer(tmp_path)
    x = torch.tensor([tok("Zorvan was founded")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert tok2("<answer> x </answer>")["input_ids"] == tok("<answer> x </answer>")["input_ids"]
    assert tok2.padding_side == "left"


def test_model_path_errors_and_the_bundled_gguf():
    assert smollm2_gguf_path().suffix == ".gguf" and smollm2_gguf_path().stat().st_size > 50e6
    assert resolve_model_path("smollm2") == smollm2_gguf_path()
    with pytest.raises(FileNotFoundError, match="hub downloads are disabled"):
        resolve_model_path("HuggingFaceTB/SmolLM2-135M-Instruct")


def test_generator_stops_at_stop_strings_budgets_and_is_deterministic(tok):
    model = tiny_llama(
        tok, TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, seed=1)
    )
    gen = HFGenerator(model, tok, batch_size=2)
    prompts = [tok("Zorvan")["input_ids"], tok("Mira Tel was")["input_ids"], tok("Ostra")["input_ids"]]
    params = SamplingParams(max_new_tokens=30, temperature=1.0, stop=("a",), seed=5)
    outs = gen.generate(prompts, params, max_new_tokens=[30, 3, 0])
    again = gen.generate(prompts, params, max_new_tokens=[30, 3, 0])
    assert [o.token_ids for o in outs] == [o.token_ids for o in again]
    assert len(outs[1].token_ids) <= 3 and outs[2].token_ids == [] and outs[2].finish_reason == "length"
    for o in outs[:2]:
        text = tok.decode(o.token_ids)
        if o.finish_reason == "stop":  # stops with the token that completes the first "a", not later
            assert "a" in text and "a" not in tok.decode(o.token_ids[:-1])
        else:
            assert "a" not in text
