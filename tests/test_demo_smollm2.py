"""`searchgym demo --preset smollm2`, shrunk: the real SmolLM2-135M-Instruct GGUF through every stage."""

from __future__ import annotations

import json

import pytest
import torch

from searchgym.demo.smollm2 import SmolDemoConfig, run_smollm2_demo
from searchgym.env.jsoncall import extract_tool_call
from searchgym.io import read_jsonl
from searchgym.trainer.sft import IGNORE, encode_transcript


def action_nll(model_dir, rows) -> float:
    """Mean loss of a model on the action tokens of chat transcripts (what SFT trains)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    losses = []
    with torch.no_grad():
        for row in rows:
            enc = encode_transcript(tok, row, 640)
            ids, labels = torch.tensor([enc["input_ids"]]), torch.tensor([enc["labels"]])
            assert (labels != IGNORE).any()
            losses.append(model(input_ids=ids, labels=labels).loss.item())
    return sum(losses) / len(losses)


@pytest.mark.slow
def test_smollm2_demo_runs_every_stage_and_sft_learns_the_transcripts(tmp_path):
    out = tmp_path / "demo"
    cfg = SmolDemoConfig().override(
        [
            f"out={out}",
            "tasks.chain_per_hops=8",
            "eval_tasks=2",
            "eval_batch_size=2",
            "sft_steps=3",
            "sft_batch_size=2",
            "sft_lr=1e-3",
            "rl_max_steps=1",
            "train.grpo.per_device_train_batch_size=2",
            "train.grpo.num_generations=2",
        ]
    )
    report = run_smollm2_demo(cfg)

    # oracle transcripts are JSON tool calls, laid out in SmolLM2's chat template
    raw = list(read_jsonl(out / "transcripts.jsonl"))
    assert raw and all(
        extract_tool_call(t["action"]).name in ("search", "access", "answer") for r in raw for t in r["turns"]
    )
    rows = list(read_jsonl(out / "transcripts_chat.jsonl"))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(out / "base")
    for row, r in zip(rows, [r for r in raw if r["success"]], strict=True):
        assert row["prompt"].startswith("<|im_start|>system\n") and row["prompt"].endswith(
            "<|im_start|>assistant\n"
        )
        text = row["prompt"] + "".join(t["action"] + t["observation"] for t in row["turns"])
        # the pieces reassemble the chat template's rendering of the whole conversation
        user = row["prompt"].split("<|im_start|>user\n", 1)[1].split("<|im_end|>", 1)[0]
        system = row["prompt"].split("<|im_start|>system\n", 1)[1].split("<|im_end|>", 1)[0]
        messages = [{"role": "system", "content": system}, {"role": "user", "content": user}]
        for t in r["turns"]:
            messages.append({"role": "assistant", "content": t["action"]})
            if t["observation"]:
                messages.append({"role": "tool", "content": t["observation"]})
        assert text + "<|im_end|>\n" == tok.apply_chat_template(messages, tokenize=False)

    # LoRA SFT: an adapter, a merged model that fits the transcripts better than the base model
    assert (out / "sft" / "adapter" / "adapter_config.json").exists()
    assert json.loads((out / "sft" / "adapter" / "adapter_config.json").read_text())["peft_type"] == "LORA"
    sample = rows[:3]
    assert action_nll(out / "sft", sample) < action_nll(out / "base", sample)

    # RL ran its step with a LoRA adapter; every evaluation wrote its directory over the same held-out tasks
    assert (out / "rl" / "final" / "adapter_config.json").exists()
    metrics = [json.loads(line) for line in (out / "rl" / "metrics.jsonl").read_text().splitlines()]
    assert any(m.get("step") == 1 and "reward" in m for m in metrics)
    ids = None
    for key in ("zero_shot", "before", "after"):
        trajs = list(read_jsonl(out / f"eval_{key}" / "trajectories.jsonl"))
        assert len(trajs) == 2
        assert ids is None or ids == sorted(t["task_id"] for t in trajs)
        ids = sorted(t["task_id"] for t in trajs)

    text = report.read_text()
    assert text.startswith("# SearchGym demo report: SmolLM2-135M-Instruct\n")
    assert "| level | tasks | zero-shot | after LoRA SFT | after RL | SFT gain | RL gain |" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] and set(summary["stages"]) == {"zero_shot_vs_sft", "sft_vs_rl"}
    assert summary["stages"]["zero_shot_vs_sft"]["overall"]["n"] == 2
    timings = json.loads((out / "timings.json").read_text())
    assert {
        "evaluate zero-shot",
        "LoRA SFT",
        "evaluate after LoRA SFT",
        "TRAC-GRPO",
        "evaluate after RL",
    } <= set(timings)
