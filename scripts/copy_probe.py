"""How many steps does the demo student need before it copies a name it never saw into its first query?

Issue 14 item 2 probe. A plain torch loop (AdamW, constant lr after a 20-step warm-up) trains a fresh demo-student on
one-turn rows — a training question's prompt and a first search — and every `--every` steps greedily decodes the
first action for held-out test questions and counts the ones whose query contains the question's entity name.

Rows (`--rows`) on the real training questions:
  first     the oracle's first action (`<search> Poxstel Jiokciond employer </search>`)
  verbatim  the question itself as the query (`<search> Who employs Poxstel Jiokciond? </search>`)
and `--fresh-share p`: each row is, with probability p, a verbatim row whose name is redrawn from random world name
words (demo/copywarm.py) — nothing to memorise, only to copy (p = 1: only those).

Needs a demo directory (world, transcripts.jsonl, tokenizer/), e.g. `searchgym demo --out DIR rl_max_steps=1`.
Writes `--out`/curve.json: [{"step", "loss", "copy"}]. Measured figures: docs/training.md ("Copy formation").

  OMP_NUM_THREADS=1 python scripts/copy_probe.py --demo DIR --out /tmp/copy --rows verbatim --fresh-share 1 --steps 3000 --lr 3e-3
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
from pathlib import Path

import torch

from searchgym.demo.copywarm import copy_warmup_rows
from searchgym.io import write_json
from searchgym.models.tiny import TinyModelConfig, tiny_llama
from searchgym.tasks.store import load_tasks
from searchgym.trainer.sft import encode_transcript, load_transcripts
from searchgym.world.store import World


def one_turn(prompt: str, action: str) -> dict:
    return {"prompt": prompt, "turns": [{"action": action, "observation": ""}], "success": True}


def verbatim(row: dict) -> dict:
    return one_turn(row["prompt"], f"<search> {row['prompt'].split('Question: ', 1)[1].strip()} </search>")


def probe_rows(rows: list[dict], kind: str) -> list[dict]:
    if kind == "first":
        return [one_turn(r["prompt"], r["turns"][0]["action"]) for r in rows]
    if kind == "verbatim":
        return [verbatim(r) for r in rows]
    raise SystemExit(f"--rows {kind!r}: choose first or verbatim")


def fresh_rows(rows: list[dict], names: list[str], count: int, seed: int) -> list[dict]:
    """Verbatim rows whose question's name is redrawn from random world name words (demo/copywarm.py)."""
    return [verbatim(r) for r in copy_warmup_rows(rows, names, count, seed)]


def pad_batch(items: list[dict], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(x["input_ids"]) for x in items)
    ids = torch.full((len(items), width), pad_id)
    labels = torch.full((len(items), width), -100)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    for i, x in enumerate(items):
        n = len(x["input_ids"])
        ids[i, :n], labels[i, :n], mask[i, :n] = torch.tensor(x["input_ids"]), torch.tensor(x["labels"]), 1
    return ids, labels, mask


def pick(rng: random.Random, data: list, fresh: list, share: float) -> dict:
    pool = fresh if rng.random() < share else data
    return pool[rng.randrange(len(pool))]


def copy_rate(model, tok, prefix: str, tasks: list, names: list[str]) -> float:
    """Share of tasks whose greedy first query contains the question's (longest) entity name."""
    model.eval()
    tok.padding_side = "left"
    hits = 0
    for i in range(0, len(tasks), 32):
        batch = tasks[i : i + 32]
        enc = tok([f"{prefix}Question: {t.question}\n" for t in batch], return_tensors="pt", padding=True)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=24, do_sample=False)
        for t, ids in zip(batch, out[:, enc["input_ids"].shape[1] :], strict=True):
            query = tok.decode(ids).split("</search>")[0]
            name = next((n for n in names if n in t.question), None)
            hits += name is not None and name in query
    model.train()
    return hits / max(len(tasks), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--demo", type=Path, required=True, help="a demo output directory")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rows", default="verbatim")
    ap.add_argument("--fresh-share", type=float, default=0.0)
    ap.add_argument("--init", type=Path, default=None, help="continue this model instead of a fresh one")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--held-out", type=int, default=96)
    ap.add_argument(
        "--shape", default="{}", help='JSON overrides of the demo-student shape, e.g. {"num_heads": 8}'
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from transformers import AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(args.demo / "tokenizer")
    rows = load_transcripts(args.demo / "transcripts.jsonl", True, strip_think=True)
    names = sorted({e.name for e in World.load(args.demo / "world").entities.values()}, key=len, reverse=True)
    data = [encode_transcript(tok, r, 256) for r in probe_rows(rows, args.rows)]
    count = args.steps * args.batch if args.fresh_share > 0 else 0
    fresh = (
        [encode_transcript(tok, r, 256) for r in fresh_rows(rows, names, count, args.seed)] if count else []
    )
    held_out = [t for t in load_tasks(args.demo / "world" / "tasks" / "demo") if t.split == "test"][
        : args.held_out
    ]
    prefix = rows[0]["prompt"].split("Question:")[0]
    shape = dataclasses.replace(
        TinyModelConfig.preset("demo-student"), seed=args.seed, **json.loads(args.shape)
    )
    if args.init is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.init).train()
    else:
        model = tiny_llama(tok, shape).train()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    rng = random.Random(args.seed)
    curve = []
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / 20)
        ids, labels, mask = pad_batch(
            [pick(rng, data, fresh, args.fresh_share) for _ in range(args.batch)], tok.pad_token_id
        )
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % args.every == 0:
            curve.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "copy": copy_rate(model, tok, prefix, held_out, names),
                }
            )
            print(json.dumps(curve[-1]), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    model.eval().save_pretrained(args.out)
    tok.save_pretrained(args.out)
    write_json(args.out / "curve.json", {"args": {k: str(v) for k, v in vars(args).items()}, "curve": curve})


if __name__ == "__main__":
    main()
