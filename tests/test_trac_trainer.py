"""TRACGRPOTrainer: real TRL GRPO steps with a tiny Llama student, a tiny teacher and a toy reward."""

import math

import pytest
import torch
from datasets import Dataset
from trl import GRPOConfig

from searchgym.advantage.teacher import HFTeacher, OpenAITeacher
from searchgym.advantage.trac import TRACConfig
from searchgym.models.tiny import TinyModelConfig, tiny_llama, train_tokenizer
from searchgym.trainer.trac_grpo import TRACGRPOTrainer

CORPUS = ["the capital of norland is vell", "ada was born in london", "search access answer think"] * 20
SMALL = dict(hidden_size=32, num_layers=1, num_heads=2, num_kv_heads=1, intermediate_size=64)


def odd_length(completions, **kwargs):
    """A toy outcome: 1 for completions of odd character length. Random students get mixed groups."""
    return [float(len(c) % 2) for c in completions]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=320, min_frequency=1)


def make_trainer(tok, tmp_path, estimator, teacher_kind="hf", steps=2):
    student = tiny_llama(tok, TinyModelConfig(**SMALL))
    teacher_model = tiny_llama(tok, TinyModelConfig(**(SMALL | {"num_layers": 2, "seed": 1})))
    teacher = {
        "hf": lambda: HFTeacher(teacher_model, tok, student_tokenizer=tok),
        "dead": lambda: OpenAITeacher("http://127.0.0.1:9", "t", len(tok), tok, tok, retries=0, timeout=1.0),
    }[teacher_kind]()
    data = Dataset.from_dict(
        {"prompt": ["the capital of", "ada was", "search", "norland is"] * 4, "task_id": ["a", "b", "c", "d"] * 4}
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


def test_estimator_without_teacher_is_refused(tok, tmp_path):
    with pytest.raises(ValueError, match="needs a teacher"):
        TRACGRPOTrainer(
            model=tiny_llama(tok, TinyModelConfig(**SMALL)),
            reward_funcs=odd_length,
            args=GRPOConfig(str(tmp_path), per_device_train_batch_size=4, num_generations=4, report_to=[], use_cpu=True),
            train_dataset=Dataset.from_dict({"prompt": ["a"] * 4}),
            processing_class=tok,
            trac_config=TRACConfig(estimator="trac"),
        )
