"""A toy TRL setup for TRACGRPOTrainer, shared by tests/test_trac_trainer.py and the multi-process script
tests/trac_multiprocess.py: tiny student and teacher Llamas, prompts with task ids, and a rollout_func that samples
each row with its own seeded generator (so 1 process and N processes produce the same rollouts) and returns the
extra fields the trainer reads (env_reward, success, task_id)."""

from __future__ import annotations

import torch
from datasets import Dataset
from trl import GRPOConfig

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.teacher import HFTeacher
from searchgym.models.tiny import TinyModelConfig, tiny_llama
from searchgym.trainer.trac_grpo import TRACGRPOTrainer

SMALL = {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 64}
PROMPTS = {"the capital of": "a", "ada was": "b", "search": "c", "norland is": "d"}


def passthrough(prompts, completions, env_reward, **_):
    """TRL reward function: the rollout's reward, unchanged (TRACGRPOTrainer checks that they agree)."""
    return list(env_reward)


class ToyRollout:
    """Per row: `length` tokens sampled at TRL's temperature, seeded by (step, global row); with `observation`, a
    fixed observation span (env_mask 0) after the first half. Reward 1 for an odd decoded length."""

    def __init__(self, tok, length: int = 8, observation: str = "", seed: int = 0):
        self.tok, self.length, self.seed = tok, length, seed
        self.obs = tok(observation, add_special_tokens=False).input_ids if observation else []

    @torch.no_grad()
    def __call__(self, prompts, trainer):
        model = trainer.accelerator.unwrap_model(trainer.model)
        lo = trainer.accelerator.process_index * len(prompts)
        temp = trainer.args.temperature
        out = {
            k: [] for k in ("prompt_ids", "completion_ids", "logprobs", "env_mask", "env_reward", "success")
        }
        out["task_id"] = []
        for i, p in enumerate(prompts):
            gen = torch.Generator().manual_seed(self.seed + 100_003 * trainer.state.global_step + lo + i)
            ids = self.tok(p).input_ids
            seq, comp, lps, mask = list(ids), [], [], []
            for k in range(self.length):
                if self.obs and k == self.length // 2:
                    seq += self.obs
                    comp += self.obs
                    lps += [0.0] * len(self.obs)
                    mask += [0] * len(self.obs)
                logp = torch.log_softmax(model(torch.tensor([seq])).logits[0, -1].float() / temp, -1)
                t = int(torch.multinomial(logp.exp(), 1, generator=gen))
                seq.append(t)
                comp.append(t)
                lps.append(logp[t].item())
                mask.append(1)
            reward = float(len(self.tok.decode(comp)) % 2)
            for key, value in zip(out, (ids, comp, lps, mask, reward, reward > 0, PROMPTS[p]), strict=True):
                out[key].append(value)
        return out


def make_trainer(
    tok,
    output_dir,
    estimator: str = "trac",
    teacher="hf",
    steps: int = 2,
    batch: int = 8,
    rollout=None,
    reward=passthrough,
    scale_rewards: str = "group",
    optim: str = "adamw_torch",
    **trainer_kw,
) -> TRACGRPOTrainer:
    """`teacher`: "hf" (a fresh 2-layer HFTeacher, seed 1), a TeacherScorer, or None; `batch` rows per device."""
    student = tiny_llama(tok, TinyModelConfig(**SMALL))
    if teacher == "hf":
        teacher_model = tiny_llama(tok, TinyModelConfig(**(SMALL | {"num_layers": 2, "seed": 1})))
        teacher = HFTeacher(teacher_model, tok, student_tokenizer=tok)
    data = Dataset.from_dict({"prompt": list(PROMPTS) * 4, "task_id": list(PROMPTS.values()) * 4})
    args = GRPOConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=batch,
        num_generations=4,
        max_completion_length=16,
        max_steps=steps,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        scale_rewards=scale_rewards,
        optim=optim,
        use_cpu=True,
        shuffle_dataset=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return TRACGRPOTrainer(
        model=student,
        reward_funcs=reward,
        args=args,
        train_dataset=data,
        processing_class=tok,
        rollout_func=rollout or ToyRollout(tok),
        teacher=teacher,
        estimator=estimator,
        trac_config=trainer_kw.pop("trac_config", TRACConfig(lam=0.5)),
        pass_rates={"a": 1.0, "b": 0.5},
        **trainer_kw,
    )
