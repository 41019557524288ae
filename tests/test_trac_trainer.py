"""TRACGRPOTrainer: real TRL GRPO steps with a tiny Llama student, a tiny teacher and a toy rollout_func
(tests/trac_toy.py). What is checked is what TRL trains on: the rows its loss receives, and `last_trac`."""

import dataclasses
import math

import pytest
import torch

from searchgym.advantage.config import TRACConfig
from searchgym.advantage.teacher import HFTeacher, OpenAITeacher, TeacherConfigError, TokenizerMismatch
from searchgym.config import ConfigError
from searchgym.models.tiny import TinyModelConfig, tiny_llama
from searchgym.trainer.trac_grpo import TeacherFallbackExceeded
from teacher_server import VLLMTeacherHandler
from trac_toy import SMALL, ToyRollout, make_trainer


def _loss_inputs(trainer) -> list[dict]:
    """Record the batches TRL's loss is computed on (compute_loss is the Trainer's public hook)."""
    seen = []
    original = trainer.compute_loss

    def spy(model, inputs, *args, **kwargs):
        seen.append({k: inputs[k].detach().clone() for k in ("completion_ids", "advantages")})
        return original(model, inputs, *args, **kwargs)

    trainer.compute_loss = spy
    return seen


def _trained_rows_match(seen: list[dict], last) -> None:
    """Every row the loss saw (TRL shuffles them) carries exactly the (B, T) advantages of its rollout."""
    by_ids = {tuple(ids): i for i, ids in enumerate(last.completion_ids)}
    assert seen
    for batch in seen:
        assert batch["advantages"].dim() == 2
        for ids, adv in zip(batch["completion_ids"], batch["advantages"], strict=True):
            i = by_ids[tuple(ids[: len(last.completion_ids[0])].tolist())]
            width = len(last.completion_ids[i])
            assert torch.equal(adv[:width], last.advantages[i, :width].to(adv.dtype))


def test_trac_grpo_trains_on_token_level_advantages_and_logs_diagnostics(tiny_tok, tmp_path):
    trainer = make_trainer(tiny_tok, tmp_path, "trac", steps=1)
    seen = _loss_inputs(trainer)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters(), strict=True))
    logged = {k for row in trainer.state.log_history for k in row}
    assert {"trac/w_D/mean", "trac/w_C/p50", "trac/w_P/mean", "trac/omega/frac_below_0.1"} <= logged
    last = trainer.last_trac
    assert last.estimator == "trac" and last.advantages.shape[0] == 8 and last.advantages.dim() == 2
    assert len(last.diagnostics["auc_per_group"]) == 2
    # the teacher term makes the advantage vary along the tokens of a rollout, and that is what TRL trains on
    assert (last.advantages.std(dim=1) > 0).any()
    _trained_rows_match(seen, last)
    # w_P from the pass rates of the rows' task ids: task "a" 1.0, "b" 0.5 (groups 0 and 1)
    assert last.terms.w_p.tolist() == [1.0] * 4 + [0.5] * 4
    assert all(row.get("trac/teacher_fallback", 0.0) == 0.0 for row in trainer.state.log_history)


def test_grpo_estimator_equals_trl_advantages(tiny_tok, tmp_path):
    trainer = make_trainer(tiny_tok, tmp_path, "grpo", steps=1)
    trainer.train()
    last = trainer.last_trac
    trl = last.trl_advantages
    assert torch.allclose(last.advantages, trl[:, None].expand_as(last.advantages), atol=1e-6)
    assert (trl != 0).any()  # mixed groups, so the comparison means something
    assert "w_D/mean" in last.diagnostics  # teacher diagnostics are logged for the GRPO baseline too


def test_grpo_runs_without_a_teacher(tiny_tok, tmp_path):
    trainer = make_trainer(tiny_tok, tmp_path, "grpo", teacher=None, steps=1)
    trainer.train()
    assert trainer.last_trac.terms is None and trainer.last_trac.diagnostics == {}
    assert torch.allclose(trainer.last_trac.advantages[:, 0], trainer.last_trac.trl_advantages, atol=1e-6)


def test_teacher_failure_falls_back_to_grpo(tiny_tok, tmp_path):
    dead = OpenAITeacher("http://127.0.0.1:9", "t", len(tiny_tok), tiny_tok, tiny_tok, retries=0, timeout=1.0)
    trainer = make_trainer(tiny_tok, tmp_path, "trac", teacher=dead, steps=1)
    result = trainer.train()
    assert math.isfinite(result.training_loss)
    assert trainer.last_trac.estimator == "grpo"
    assert any(row.get("trac/teacher_fallback") == 1.0 for row in trainer.state.log_history)
    trl = trainer.last_trac.trl_advantages
    assert torch.allclose(trainer.last_trac.advantages[:, 0], trl, atol=1e-6)


@pytest.fixture
def teacher_server(tiny_tok, http_server):
    """A real vLLM-format teacher server on 127.0.0.1 with vLLM's default --max-logprobs 20."""
    model = tiny_llama(tiny_tok, TinyModelConfig(**(SMALL | {"num_layers": 2, "seed": 1})))
    return http_server(VLLMTeacherHandler, teacher=model, modes=["ok"], calls=0, auth=None, cap=20)


def _served(srv, tok, top_k: int = 5) -> OpenAITeacher:
    url = f"http://127.0.0.1:{srv.server_port}"
    return OpenAITeacher(url, "teacher", len(tok), tok, tok, top_k=top_k, retries=0, timeout=5.0)


def test_top_k_over_the_servers_cap_stops_the_run_before_step_one(tiny_tok, tmp_path, teacher_server):
    with pytest.raises(TeacherConfigError, match=r"--max-logprobs 50 or set teacher\.top_k<=20"):
        make_trainer(tiny_tok, tmp_path, "trac", teacher=_served(teacher_server, tiny_tok, top_k=50))
    assert teacher_server.calls == 1  # the start-up probe, nothing trained


def _fallback_trainer(tok, tmp_path, srv, steps: int, **trac):
    estimators = []
    trainer = make_trainer(
        tok,
        tmp_path,
        "trac",
        teacher=_served(srv, tok),
        steps=steps,
        trac_config=TRACConfig(lam=0.5, **trac),
        on_batch=lambda step: estimators.append(step.estimator),
    )
    return trainer, estimators


def test_transient_teacher_failures_fall_back_per_batch_and_are_counted(tiny_tok, tmp_path, teacher_server):
    teacher_server.modes = ["ok", "5xx", "ok"]  # the probe, then batch 1 gets a 503, batches 2-4 are scored
    trainer, estimators = _fallback_trainer(
        tiny_tok, tmp_path, teacher_server, 4, max_teacher_fallback_share=0.5, teacher_fallback_min_batches=2
    )
    trainer.train()
    assert estimators == ["grpo", "trac", "trac", "trac"] and teacher_server.calls == 5
    assert (trainer.teacher_fallbacks, trainer.teacher_batches, trainer.teacher_fallback_share) == (
        1,
        4,
        0.25,
    )
    rows = [r for r in trainer.state.log_history if "trac/teacher_fallback_share" in r]
    assert [r["trac/teacher_fallback"] for r in rows] == [1.0, 0.0, 0.0, 0.0]
    assert [r["trac/teacher_fallback_share"] for r in rows] == [1.0, 0.5, pytest.approx(1 / 3), 0.25]


def test_a_run_whose_fallback_share_exceeds_the_limit_stops(tiny_tok, tmp_path, teacher_server):
    teacher_server.modes = ["ok", "5xx"]  # the probe passes, then the server stays overloaded
    trainer, estimators = _fallback_trainer(
        tiny_tok, tmp_path, teacher_server, 5, teacher_fallback_min_batches=2
    )
    with pytest.raises(
        TeacherFallbackExceeded, match=r"2 of 2 .*\(100%\).*trac\.max_teacher_fallback_share=0\.1"
    ):
        trainer.train()
    assert estimators == ["grpo"] and teacher_server.calls == 3  # stopped in batch 2, before it trained
    with pytest.raises(ConfigError, match="max_teacher_fallback_share=1.5"):
        TRACConfig(max_teacher_fallback_share=1.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"estimator": "trac", "teacher": None}, "needs a teacher"),
        ({"estimator": "ppo"}, "registered"),
    ],
    ids=["no-teacher", "unknown"],
)
def test_bad_estimator_setup_is_refused_before_training(tiny_tok, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_trainer(tiny_tok, tmp_path, **kwargs)


def test_missing_rollout_fields_and_a_second_reward_are_refused(tiny_tok, tmp_path):
    class NoSuccess(ToyRollout):
        def __call__(self, prompts, trainer):
            out = super().__call__(prompts, trainer)
            del out["success"]
            return out

    with pytest.raises(ValueError, match="'success'"):
        make_trainer(tiny_tok, tmp_path / "a", rollout=NoSuccess(tiny_tok), steps=1).train()

    def other_reward(prompts, completions, env_reward, **_):
        return [1.0 - r for r in env_reward]  # not the rollout's reward: advantages would disagree with TRL's

    with pytest.raises(ValueError, match="env_reward"):
        make_trainer(tiny_tok, tmp_path / "b", reward=other_reward, steps=1).train()


def test_the_callers_config_is_not_changed(tiny_tok, tmp_path):
    cfg = TRACConfig(lam=0.5)  # outcome_scale=True, but TRL is told scale_rewards="none"
    trainer = make_trainer(tiny_tok, tmp_path, "trac", trac_config=cfg, steps=1, scale_rewards="none")
    assert not trainer.trac_config.outcome_scale
    assert cfg == TRACConfig(lam=0.5) and dataclasses.replace(trainer.trac_config, outcome_scale=True) == cfg
    trainer.train()  # the trainer checks its outcome advantages against TRL's: unscaled on both sides
    r = trainer.last_trac.stats.reward
    assert torch.allclose(trainer.last_trac.trl_advantages, r - r.view(2, 4).mean(1).repeat_interleave(4))


def test_observation_tokens_get_the_outcome_advantage_only(tiny_tok, tmp_path):
    """A multi-turn rollout: model tokens, an observation span (env_mask 0), model tokens, sampler log-probs."""
    rollout = ToyRollout(tiny_tok, length=6, observation=" <information> vell </information>")
    trainer = make_trainer(tiny_tok, tmp_path, "uncalibrated", rollout=rollout, steps=1)
    seen = _loss_inputs(trainer)
    trainer.train()
    last = trainer.last_trac
    assert last.estimator == "uncalibrated"
    adv, trl = last.advantages, last.trl_advantages
    model_tokens = torch.zeros_like(adv, dtype=torch.bool)
    for i, mask in enumerate(last.env_mask):
        m = torch.tensor(mask, dtype=torch.bool)
        assert (~m).sum() == len(rollout.obs)  # the observation span is exactly the env_mask-0 tokens
        assert torch.allclose(adv[i, : len(mask)][~m], trl[i].expand(int((~m).sum())))
        model_tokens[i, : len(mask)] = m
    assert not torch.allclose(adv[model_tokens], trl[:, None].expand_as(adv)[model_tokens])
    _trained_rows_match(seen, last)


def test_teacher_with_another_tokenizer_is_refused(tiny_tok, tiny_corpus, tiny_llama_factory, tmp_path):
    from searchgym.env.protocol import PROTOCOL_TAGS
    from searchgym.models.tiny import train_tokenizer

    other = train_tokenizer(
        [c.upper() for c in tiny_corpus], vocab_size=320, min_frequency=1, special_tokens=PROTOCOL_TAGS
    )
    teacher = HFTeacher(tiny_llama_factory(other), other)  # no student tokenizer given here
    with pytest.raises(TokenizerMismatch, match="same tokenizer"):
        make_trainer(tiny_tok, tmp_path, teacher=teacher)
