"""`searchgym sft`: supervised warm-start on the oracle's transcripts with TRL's SFTTrainer.

Each transcript is tokenised exactly as the rollout lays out a trajectory: prompt tokens, then per turn the
model's action tokens followed by the environment's observation tokens. Labels are the action tokens only
(-100 on prompt and observation tokens), so the model learns to act, not to predict search results.
The same command makes the demo's teacher: `--model-size teacher` (a larger tiny model) trained longer.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.io import atomic_dir, read_jsonl

IGNORE = -100


@dataclass
class SFTRunConfig(YamlConfig):
    model_size: str = "student"  # a `searchgym.models.tiny` preset: student | teacher
    model_overrides: dict[str, Any] = field(default_factory=dict)  # TinyModelConfig fields over the preset
    max_steps: int = 300
    learning_rate: float = 2e-3  # tiny models from scratch tolerate (and need) a large step
    batch_size: int = 16
    max_length: int = 1024
    vocab_size: int = 4096
    only_success: bool = True  # train on successful transcripts only
    strip_think: bool = False  # drop <think>…</think> from actions (pair with env.require_think=false)
    warmup_ratio: float = 0.05
    seed: int = 0

    def __post_init__(self) -> None:
        at_least = {"max_steps": 1, "batch_size": 1, "max_length": 2, "vocab_size": 300}
        bad = [
            f"{k}={getattr(self, k)} (must be >= {low})"
            for k, low in at_least.items()
            if getattr(self, k) < low
        ]
        if not self.learning_rate > 0:
            bad.append(f"learning_rate={self.learning_rate} (must be > 0)")
        if not 0 <= self.warmup_ratio < 1:
            bad.append(f"warmup_ratio={self.warmup_ratio} (must be in [0, 1))")
        if bad:
            raise ConfigError(f"sft: {'; '.join(bad)}")


def encode_transcript(tokenizer: Any, row: dict[str, Any], max_length: int) -> dict[str, list[int]]:
    """input_ids and labels (action tokens only) of one transcript, truncated to `max_length` tokens."""
    ids = list(tokenizer(row["prompt"], add_special_tokens=True)["input_ids"])  # as the rollout does
    labels = [IGNORE] * len(ids)
    for turn in row["turns"]:
        action = tokenizer.encode(turn["action"], add_special_tokens=False)
        ids += action
        labels += action
        obs = turn.get("observation") or ""
        if obs:
            obs_ids = tokenizer.encode(obs, add_special_tokens=False)
            ids += obs_ids
            labels += [IGNORE] * len(obs_ids)
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


THINK = re.compile(r"<think>.*?</think>\s*", re.S)


def load_transcripts(path: Path, only_success: bool, strip_think: bool = False) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no transcripts file; make one with `searchgym tasks oracle`")
    rows = [r for r in read_jsonl(path) if r.get("success") or not only_success]
    if not rows:
        raise ConfigError(f"{path}: no {'successful ' if only_success else ''}transcripts to train on")
    if strip_think:
        for r in rows:
            r["turns"] = [{**t, "action": THINK.sub("", t["action"])} for t in r["turns"]]
    return rows


def corpus_texts(world_dir: Path) -> list[str]:
    path = Path(world_dir) / "corpus.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing; build the world with `searchgym world build`")
    return [f"{d['title']}\n{d['text']}" for d in read_jsonl(path)]


def transcript_texts(rows: list[dict[str, Any]]) -> list[str]:
    return [
        row["prompt"] + "".join(t["action"] + (t.get("observation") or "") for t in row["turns"])
        for row in rows
    ]


def build_tokenizer(world_dir: Path, rows: list[dict[str, Any]], vocab_size: int) -> Any:
    """A tokenizer trained on the world's corpus and the transcripts (protocol phrasing and tags)."""
    from searchgym.env.protocol import PROTOCOL_TAGS
    from searchgym.models.tiny import train_tokenizer

    return train_tokenizer(
        corpus_texts(world_dir) + transcript_texts(rows), vocab_size=vocab_size, special_tokens=PROTOCOL_TAGS
    )


def run_sft(
    world_dir: Path,
    transcripts: Path,
    out_dir: Path,
    cfg: SFTRunConfig,
    tokenizer_dir: Path | None = None,
    init_model: Path | None = None,
    callbacks: list | None = None,
    peft_config: Any = None,
) -> dict[str, Any]:
    """Train a tiny model (or continue `init_model`) on the transcripts; save model + tokenizer to `out_dir`.
    With a peft `peft_config` (LoRA) only the adapter trains; it is saved to `out_dir/adapter` and the merged model
    to `out_dir`."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, PrinterCallback
    from trl import SFTConfig, SFTTrainer

    from searchgym.models.tiny import TinyModelConfig, tiny_llama

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    rows = load_transcripts(transcripts, cfg.only_success, cfg.strip_think)
    if init_model is not None:
        tokenizer = AutoTokenizer.from_pretrained(init_model)
        model = AutoModelForCausalLM.from_pretrained(init_model, dtype=torch.float32)
    else:
        if tokenizer_dir is not None:
            tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
        else:
            tokenizer = build_tokenizer(world_dir, rows, cfg.vocab_size)
        preset = TinyModelConfig.preset(cfg.model_size).to_dict()
        mcfg = TinyModelConfig.from_dict({**preset, **cfg.model_overrides, "seed": cfg.seed})
        model = tiny_llama(tokenizer, mcfg)
    tokenizer.padding_side = "left"
    data = Dataset.from_list([encode_transcript(tokenizer, r, cfg.max_length) for r in rows])
    out_dir = Path(out_dir)
    with atomic_dir(out_dir, overwrite=True) as tmp:
        args = SFTConfig(
            output_dir=str(tmp / "trainer"),
            max_steps=cfg.max_steps,
            per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.learning_rate,
            lr_scheduler_type="cosine",
            warmup_steps=cfg.warmup_ratio,  # a float < 1 is a ratio of max_steps
            logging_steps=max(1, cfg.max_steps // 20),
            save_strategy="no",
            report_to="none",
            seed=cfg.seed,
            data_seed=cfg.seed,
            use_cpu=not torch.cuda.is_available(),
            bf16=False,
            max_length=cfg.max_length,
            gradient_checkpointing=False,
            dataset_num_proc=None,
            disable_tqdm=callbacks is not None,
        )
        model.train()
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=tokenizer,
            callbacks=callbacks,
            peft_config=peft_config,
        )
        if callbacks is not None:  # the caller shows progress; no per-step log dicts on stdout
            trainer.remove_callback(PrinterCallback)
        result = trainer.train()
        if peft_config is not None:
            trainer.model.save_pretrained(tmp / "adapter")
            model = trainer.model.merge_and_unload()
        model.eval()
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
        summary = {
            "transcripts": len(rows),
            "steps": cfg.max_steps,
            "model_size": cfg.model_size,
            "init_model": str(init_model) if init_model is not None else None,
            "parameters": sum(p.numel() for p in model.parameters()),
            "first_loss": losses[0] if losses else None,
            "final_loss": losses[-1] if losses else None,
            "train_runtime": result.metrics.get("train_runtime"),
            "config": cfg.to_dict(),
        }
        (tmp / "sft_summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        import shutil

        shutil.rmtree(tmp / "trainer", ignore_errors=True)
    return summary
