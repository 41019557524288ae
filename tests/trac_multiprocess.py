"""One TRAC-GRPO step of the toy setup (tests/trac_toy.py) on however many processes accelerate starts; the global
generation batch is always 12 rollouts = 3 groups of 4, so with 2 processes the middle group spans both. Every
process writes its rows' advantages; process 0 writes the parameters after the step.

    accelerate launch --cpu --num_processes 2 tests/trac_multiprocess.py OUT_DIR ESTIMATOR
"""

import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from searchgym.advantage.config import TRACConfig  # noqa: E402
from searchgym.env.protocol import PROTOCOL_TAGS  # noqa: E402
from searchgym.models.tiny import train_tokenizer  # noqa: E402
from trac_toy import ToyRollout, make_trainer  # noqa: E402

CORPUS = ["the capital of norland is vell", "ada was born in london", "search access answer think"] * 20


def main() -> None:
    out, estimator = Path(sys.argv[1]), sys.argv[2]
    torch.set_num_threads(1)
    tok = train_tokenizer(CORPUS, vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS)
    n = int(os.environ.get("WORLD_SIZE", "1"))  # set by the launcher (torchrun)
    # plain SGD: Adam's first step is about lr * sign(g), which turns float noise in near-zero gradients into
    # full-size steps; SGD keeps "same gradients" visible as "same parameters"
    # rollout seed 7: all three groups have mixed outcomes; w_C off: a random teacher's w_C is ~0.001, which would
    # make the teacher term too small to see
    trainer = make_trainer(
        tok,
        out / "run",
        estimator,
        steps=1,
        batch=12 // n,
        optim="sgd",
        rollout=ToyRollout(tok, seed=7),
        trac_config=TRACConfig(lam=0.5, use_wc=False),
    )
    k = trainer.accelerator.process_index
    if k == 0:
        torch.save(_params(trainer), out / "params_before.pt")
    trainer.train()
    last = trainer.last_trac
    torch.save(
        {
            "advantages": last.advantages,
            "rows": (last.rows.start, last.rows.stop),
            "reward": last.stats.reward,
            "estimator": last.estimator,
            "wd_state": trainer.wd_state.history,
        },
        out / f"rows{k}.pt",
    )
    if k == 0:
        torch.save(_params(trainer), out / "params.pt")


def _params(trainer) -> dict:
    model = trainer.accelerator.unwrap_model(trainer.model)
    return {name: p.detach().clone() for name, p in model.named_parameters()}


if __name__ == "__main__":
    main()
