"""TRACGRPOTrainer: real TRL GRPO steps with a tiny Llama student, a tiny teacher and a toy reward."""

import math

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.teacher import HFTeacher, OpenAITeacher, TokenizerMismatch
from searchgym.env.protocol import PROTOCOL_TAGS
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.trainer.trac_grpo import TRACGRPOTrainer

CORPUS = ["the capital of norland is vell", "ada was born in london", "search access answer think"] * 20
SMALL = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


def odd_length(completions, **kwargs):
    """A toy outcome: 1 for completions of odd character length. Random students get mixed groups."""
    return [float(len(c) % 2) for c in completions]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS)


def make_trainer(tok, tmp_path, estimator, teacher_kind="hf", steps=2):
    student = tiny_llama(tok, TinyModelConfig(**SMALL))
    teacher_model = tiny_llama(tok, TinyModelConfig(**(SMALL | {"num_layers": 2, "seed": 1})))
    teacher = {
        "hf": lambda: HFTeacher(teacher_model, tok, student_tokenizer=tok),
        "dead": lambda: OpenAITeacher("http://127.0.0.1:9", "t", len(tok), tok, tok, retries=0, timeout=1.0),
    }[teacher_kind]()
    data = Dataset.from_dict(
        {
            "prompt": ["the capital of", "ada was", "search", "norland is"] * 4,
            "task_id": ["a", "b", "c", "d"] * 4,
        }
    )
    args = GRPOConfig(
        output_dir=str(tmp_path / estimator),
        per_device_train_batch_size=8,
        num_generations=4,
        max_completion_length=8,
        max_steps=steps,
        learning_rate=1e-2,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        use_cpu=True,
        dataloader_num_workers=0,
    )
    return TRACGRPOTrainer(
        model=student,
        reward_funcs=odd_length,
        args=args,
        train_dataset=data,
        processing_class=tok,
        teacher=teacher,
        trac_config=TRACConfig(estimator=estimator, lam=0.5),
        pass_rates={"a": 1.0, "b": 0.5},
    )


def test_trac_grpo_trains_and_logs_diagnostics(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, "trac")
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    logged = {k for row in trainer.state.log_history for k in row}
    assert {"trac/w_D/mean", "trac/w_C/p50", "trac/w_P/mean", "trac/omega/frac_below_0.1"} <= logged
    last = trainer.last_trac
    assert last["estimator"] == "trac" and last["advantages"].shape[0] == 8 and last["advantages"].dim() == 2
    assert len(last["diagnostics"]["auc_per_group"]) == 2
    # the teacher term makes the advantage vary along the tokens of a rollout
    assert (last["advantages"].std(dim=1) > 0).any()
    assert all(row.get("trac/teacher_fallback", 0.0) == 0.0 for row in trainer.state.log_history)


def test_grpo_estimator_equals_trl_advantages(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, "grpo", steps=1)
    trainer.train()
    last = trainer.last_trac
    trl = last["trl_advantages"]
    assert torch.allclose(last["advantages"], trl[:, None].expand_as(last["advantages"]), atol=1e-6)
    assert "w_D/mean" in last["diagnostics"]  # teacher diagnostics are logged for the GRPO baseline too


def test_teacher_failure_falls_back_to_grpo(tok, tmp_path):
    trainer = make_trainer(tok, tmp_path, "trac", teacher_kind="dead", steps=1)
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert trainer.last_trac["estimator"] == "grpo"
    assert any(row.get("trac/teacher_fallback") == 1.0 for row in trainer.state.log_history)
    trl = trainer.last_trac["trl_advantages"]
    assert torch.allclose(trainer.last_trac["advantages"][:, 0], trl, atol=1e-6)


@pytest.mark.parametrize(
    ("estimator", "message"),
    [("trac", "needs a teacher"), ("ppo", "registered")],
    ids=["no-teacher", "unknown"],
)
def test_bad_estimator_setup_is_refused_before_training(tok, tmp_path, estimator, message):
    with pytest.raises(ValueError, match=message):
        TRACGRPOTrainer(
            model=tiny_llama(tok, TinyModelConfig(**SMALL)),
            reward_funcs=odd_length,
            args=GRPOConfig(
                str(tmp_path), per_device_train_batch_size=4, num_generations=4, report_to=[], use_cpu=True
            ),
            train_dataset=Dataset.from_dict({"prompt": ["a"] * 4}),
            processing_class=tok,
            trac_config=TRACConfig(estimator=estimator),
        )


def test_rollout_func_env_mask_keeps_observations_free_of_teacher_reward(tok, tmp_path):
    """A multi-turn rollout_func: model turn, observation tokens (env_mask 0), model turn, with sampler log-probs."""
    obs = tok(" <information> vell </information>").input_ids

    @torch.no_grad()
    def rollout(prompts, trainer):
        model, out = trainer.model, {"prompt_ids": [], "completion_ids": [], "logprobs": [], "env_mask": []}
        for p in prompts:
            ids = tok(p).input_ids
            first = model.generate(
                torch.tensor([ids]), do_sample=True, max_new_tokens=3, pad_token_id=tok.pad_token_id
            )
            second = model.generate(
                torch.cat([first, torch.tensor([obs])], 1),
                do_sample=True,
                max_new_tokens=3,
                pad_token_id=tok.pad_token_id,
            )
            full = second[0].tolist()
            completion = full[len(ids) :]
            mask = [1] * (first.shape[1] - len(ids)) + [0] * len(obs)
            mask += [1] * (len(completion) - len(mask))
            logp = torch.log_softmax(model(second).logits[0, :-1].float(), -1)
            token_logp = logp.gather(-1, second[0, 1:, None]).squeeze(-1)[len(ids) - 1 :]
            out["prompt_ids"].append(ids)
            out["completion_ids"].append(completion)
            out["env_mask"].append(mask)
            out["logprobs"].append(
                [lp if m else 0.0 for lp, m in zip(token_logp.tolist(), mask, strict=True)]
            )
        return out

    trainer = make_trainer(tok, tmp_path, "uncalibrated", steps=1)
    trainer.rollout_func = rollout
    trainer.train()
    last = trainer.last_trac
    assert last["estimator"] == "uncalibrated"
    adv, trl = last["advantages"], last["trl_advantages"]
    for i, mask in enumerate(trainer._trac_ids[2]):
        m = torch.tensor(mask, dtype=torch.bool)
        row = adv[i, : len(mask)]
        assert torch.allclose(
            row[~m], trl[i].expand(int((~m).sum()))
        )  # observation tokens: outcome advantage only
    model_tokens = torch.zeros_like(adv, dtype=torch.bool)
    for i, mask in enumerate(trainer._trac_ids[2]):
        model_tokens[i, : len(mask)] = torch.tensor(mask, dtype=torch.bool)
    assert not torch.allclose(adv[model_tokens], trl[:, None].expand_as(adv)[model_tokens])


def test_teacher_with_another_tokenizer_is_refused(tok, tmp_path):
    other = train_tokenizer(
        [c.upper() for c in CORPUS], vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )
    teacher = HFTeacher(tiny_llama(other, TinyModelConfig(**SMALL)), other)  # no student tokenizer given here
    with pytest.raises(TokenizerMismatch, match="same tokenizer"):
        TRACGRPOTrainer(
            model=tiny_llama(tok, TinyModelConfig(**SMALL)),
            reward_funcs=odd_length,
            args=GRPOConfig(
                str(tmp_path), per_device_train_batch_size=4, num_generations=4, report_to=[], use_cpu=True
            ),
            train_dataset=Dataset.from_dict({"prompt": ["a"] * 4}),
            processing_class=tok,
            teacher=teacher,
        )
