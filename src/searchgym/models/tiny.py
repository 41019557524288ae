"""Tiny CPU models: a byte-level BPE tokenizer trained on a corpus and a small Llama built from a config.

Nothing is downloaded: the tokenizer is trained locally with `tokenizers`, the model is `LlamaForCausalLM(LlamaConfig)`
with random weights. Protocol tags are added as single, non-splittable tokens that survive `decode(...,
skip_special_tokens=True)`, so a model's action text round-trips through the tokenizer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from searchgym.config import ConfigError, YamlConfig

if TYPE_CHECKING:
    from transformers import LlamaForCausalLM, PreTrainedTokenizerFast

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"

# A minimal chat template: enough for apply_chat_template (roles as headers, eos closes each message).
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}" + EOS + "\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4096,
    special_tokens: Iterable[str] = (),
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `texts`; `special_tokens` (e.g. the env's protocol tags) become single
    tokens kept on decode."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tags = list(special_tokens)
    if vocab_size < 300:
        raise ConfigError(f"vocab_size={vocab_size} is too small for byte-level BPE (256 bytes + specials)")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    # special=False: never stripped by skip_special_tokens, but still matched whole before BPE.
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in tags])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


@dataclass
class TinyModelConfig(YamlConfig):
    """Shape of a tiny Llama; the defaults are the "student" preset (see PRESETS)."""

    hidden_size: int = 192
    num_layers: int = 6
    num_heads: int = 6
    num_kv_heads: int = 2
    intermediate_size: int = 512
    max_position_embeddings: int = 4096
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = True
    seed: int = 0

    @classmethod
    def preset(cls, name: str) -> TinyModelConfig:
        if name not in PRESETS:
            raise ConfigError(f"unknown tiny model preset {name!r}; choose one of {sorted(PRESETS)}")
        return dataclasses.replace(PRESETS[name])


# The one table of tiny model shapes. With a 4k vocabulary: student ≈ 3.4M parameters, teacher ≈ 8M; the demo's
# pair is smaller so SFT and RL fit its 20-minute CPU budget (same tokenizer, so teacher log-probs align).
PRESETS: dict[str, TinyModelConfig] = {
    "student": TinyModelConfig(),
    "teacher": TinyModelConfig(
        hidden_size=256, num_layers=8, num_heads=8, num_kv_heads=4, intermediate_size=768
    ),
    "demo-student": TinyModelConfig(
        hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=384
    ),
    "demo-teacher": TinyModelConfig(
        hidden_size=160, num_layers=5, num_heads=5, num_kv_heads=1, intermediate_size=448
    ),
}


def tiny_llama(tokenizer: PreTrainedTokenizerFast, cfg: TinyModelConfig | None = None) -> LlamaForCausalLM:
    """A randomly initialised LlamaForCausalLM sized by `cfg`, with the tokenizer's vocabulary and special ids."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = cfg or TinyModelConfig()
    if cfg.hidden_size % cfg.num_heads or cfg.num_heads % cfg.num_kv_heads:
        raise ConfigError(
            f"hidden_size={cfg.hidden_size} must divide by num_heads={cfg.num_heads}, "
            f"which must divide by num_kv_heads={cfg.num_kv_heads}"
        )
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()
