"""TRAC-GRPO overhead: wall time of a TRAC-GRPO step / a GRPO step, and teacher scoring memory.

1. Step time. One run, same tiny setup for both trainers: a tiny Llama student, a teacher twice its depth and width
   (same locally trained tokenizer), a toy prompt set, and one toy rollout_func (batched sampling, reward 1 for an odd
   completion length, returning the rollout's log-probs, success and task id as TRACGRPOTrainer needs). TRL's plain
   `GRPOTrainer` vs `TRACGRPOTrainer(estimator="trac")` with an `HFTeacher`, run alternately (`--rounds`); the first
   (warm-up) step of every run is excluded and the medians are compared. Completions are forced to full length so
   both trainers do the same generation work. Wall time is the target (ratio <= 1.25); the process CPU-time ratio is printed too, because
   on a shared machine other processes' load moves wall time.
2. Memory. `HFTeacher` on one 4,096-token sequence with a 32,000-token vocabulary, chunked LM head vs one full
   projection. Each variant runs in a fresh subprocess; the figure is the growth of the process's peak RSS during
   scoring (VmHWM reset through /proc/self/clear_refs just before scoring, minus VmRSS at that moment).

    .venv/bin/python bench/bench_trac.py                 # writes bench/results/trac.json
    .venv/bin/python bench/bench_trac.py --steps 4 --skip-memory
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "trac.json"
CORPUS = [
    "the capital of norland is vell and its mayor is ora quint",
    "ada lovelace was born in london in 1815",
    "<search> capital of norland </search> <information> vell </information> <answer> vell </answer>",
] * 30


def passthrough(prompts, completions, env_reward, **kwargs):
    return list(env_reward)


def toy_rollout(tok, length: int):
    """A rollout_func: `length` sampled tokens per prompt, their log-probs, reward 1 for an odd decoded length."""
    import torch

    @torch.no_grad()
    def rollout(prompts, trainer):
        model = trainer.accelerator.unwrap_model(trainer.model)
        enc = tok(prompts, padding=True, return_tensors="pt")
        gen = model.generate(
            **enc,
            do_sample=True,
            max_new_tokens=length,
            min_new_tokens=length,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=tok.pad_token_id,
        )
        comp = gen.sequences[:, enc.input_ids.shape[1] :]
        logp = torch.stack([torch.log_softmax(s.float(), -1) for s in gen.scores], 1)
        logp = logp.gather(-1, comp[..., None]).squeeze(-1)
        texts = tok.batch_decode(comp, skip_special_tokens=True)
        rewards = [float(len(t) % 2) for t in texts]
        return {
            "prompt_ids": [
                row[m.bool()].tolist() for row, m in zip(enc.input_ids, enc.attention_mask, strict=True)
            ],
            "completion_ids": comp.tolist(),
            "logprobs": logp.tolist(),
            "env_reward": rewards,
            "success": [r > 0 for r in rewards],
            "task_id": list(prompts),
        }

    return rollout


def step_times(args: argparse.Namespace) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from searchgym.advantage.config import TRACConfig
    from searchgym.advantage.teacher import HFTeacher
    from searchgym.env.protocol import PROTOCOL_TAGS
    from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
    from searchgym.trainer.trac_grpo import TRACGRPOTrainer

    class Timer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []

        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter(), time.process_time()

        def on_step_end(self, *a, **k):
            self.times.append((time.perf_counter() - self.start[0], time.process_time() - self.start[1]))

    torch.set_num_threads(args.threads)
    tok = train_tokenizer(CORPUS, vocab_size=args.vocab, min_frequency=1, special_tokens=PROTOCOL_TAGS)
    tok.padding_side = "left"
    student_cfg = TinyModelConfig(
        hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2, intermediate_size=128
    )
    teacher_cfg = TinyModelConfig(
        hidden_size=128, num_layers=4, num_heads=4, num_kv_heads=2, intermediate_size=256, seed=1
    )
    prompts = ["the capital of", "ada was born", "<search>", "norland is"]
    data = Dataset.from_dict({"prompt": prompts * args.steps * 4})

    def run(name: str) -> list[float]:
        grpo_args = GRPOConfig(
            output_dir=tempfile.mkdtemp(prefix=f"bench_trac_{name}_"),
            per_device_train_batch_size=args.batch,
            num_generations=args.generations,
            max_completion_length=args.completion_len,
            max_steps=args.steps,
            learning_rate=1e-4,
            logging_steps=1,
            report_to=[],
            save_strategy="no",
            seed=0,
            use_cpu=True,
        )
        timer = Timer()
        common = dict(
            model=tiny_llama(tok, student_cfg),
            reward_funcs=passthrough,
            args=grpo_args,
            train_dataset=data,
            processing_class=tok,
            rollout_func=toy_rollout(tok, args.completion_len),  # full length: equal work in both trainers
            callbacks=[timer],
        )
        if name == "grpo":
            trainer = GRPOTrainer(**common)
        else:
            teacher = HFTeacher(tiny_llama(tok, teacher_cfg), tok, student_tokenizer=tok)
            trainer = TRACGRPOTrainer(teacher=teacher, estimator="trac", trac_config=TRACConfig(), **common)
        trainer.train()
        return timer.times[1:]

    grpo, trac = [], []
    for _ in range(args.rounds):  # alternate, so load from other processes drifts into both figures alike
        grpo += run("grpo")
        trac += run("trac")
    g, t = (statistics.median(w for w, _ in x) for x in (grpo, trac))
    g_cpu, t_cpu = (statistics.median(c for _, c in x) for x in (grpo, trac))
    return {
        "setup": {
            "vocab": len(tok),
            "student": student_cfg.to_dict(),
            "teacher": teacher_cfg.to_dict(),
            "batch": args.batch,
            "num_generations": args.generations,
            "max_completion_length": args.completion_len,
            "timed_steps_per_trainer": args.rounds * (args.steps - 1),
            "threads": args.threads,
            "load_average_1_5_15min_at_end": list(os.getloadavg()),
            "cpu_count": os.cpu_count(),
        },
        "grpo_step_s": g,
        "trac_step_s": t,
        "ratio": t / g,
        "target_ratio": 1.25,
        "grpo_step_cpu_s": g_cpu,
        "trac_step_cpu_s": t_cpu,
        "cpu_ratio": t_cpu / g_cpu,
        "grpo_steps_wall_cpu_s": grpo,
        "trac_steps_wall_cpu_s": trac,
    }


def _rss_kb(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in kB."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1))


def memory_worker(chunk: int) -> None:
    """Runs in a subprocess: peak RSS growth while scoring one 4k-token sequence with a 32k vocabulary."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from searchgym.advantage.teacher import HFTeacher

    class Tok:
        pad_token_id = 0

    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = LlamaConfig(
        vocab_size=32000,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
    )
    scorer = HFTeacher(LlamaForCausalLM(cfg), Tok(), batch_size=1, chunk=chunk or None)
    seq = torch.randint(0, 32000, (4096,)).tolist()
    mask = [0] * 96 + [1] * 4000
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak RSS (VmHWM) to the current RSS
    before = _rss_kb("VmRSS")
    start = time.perf_counter()
    logp, entropy = scorer.score([seq], [mask])
    seconds = time.perf_counter() - start
    after = _rss_kb("VmHWM")
    assert torch.isfinite(logp).all() and torch.isfinite(entropy).all()
    print(
        json.dumps(
            {"chunk": chunk or None, "peak_rss_growth_mb": (after - before) / 1024, "seconds": seconds}
        )
    )


def memory(chunks: list[int]) -> dict:
    out = {}
    for chunk in chunks:
        proc = subprocess.run(
            [sys.executable, __file__, "--memory-worker", str(chunk)],
            # glibc keeps freed buffers below its (adaptive, up to 32 MB) mmap threshold in the heap, which would show
            # up as RSS; a fixed 1 MB threshold returns every large tensor to the OS, so RSS tracks live memory
            env=os.environ | {"MALLOC_MMAP_THRESHOLD_": str(1 << 20)},
            capture_output=True,
            text=True,
            check=True,
        )
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        out["unchunked" if chunk == 0 else f"chunk_{chunk}"] = row
    out["logits_fp32_mb"] = 4096 * 32000 * 4 / 2**20  # one full (L, |V|) float32 tensor
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=6, help="training steps per trainer (the first is warm-up)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--generations", type=int, default=8)
    p.add_argument("--completion-len", type=int, default=48)
    p.add_argument("--vocab", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=2, help="alternating GRPO / TRAC-GRPO runs")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--memory-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.memory_worker is not None:
        return memory_worker(args.memory_worker)

    from searchgym.io import write_json

    result = {"step_time": step_times(args)}
    st = result["step_time"]
    print(
        f"GRPO step {st['grpo_step_s']:.3f}s  TRAC-GRPO step {st['trac_step_s']:.3f}s  wall ratio {st['ratio']:.3f}"
        f"  (process CPU time ratio {st['cpu_ratio']:.3f})"
    )
    if not args.skip_memory:
        result["teacher_memory_32k_vocab_4k_tokens"] = memory([0, 512, 128])
        for name, row in result["teacher_memory_32k_vocab_4k_tokens"].items():
            if isinstance(row, dict):
                print(
                    f"teacher scoring {name:>10}: +{row['peak_rss_growth_mb']:.0f} MB peak RSS, {row['seconds']:.2f}s"
                )
    write_json(RESULTS, result)
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
