"""Every shipped preset builds all its config objects (TrainConfig, TRL GRPOConfig, env, rollout, TRAC,
curriculum, LoRA) without loading any weights."""

from __future__ import annotations

import pytest

from searchgym.config import ConfigError
from searchgym.trainer.config import TrainConfig, env_config, grpo_args, rollout_config, trac_config
from searchgym.trainer.grpo import _peft_config
from searchgym.trainer.presets import preset_names, resolve_preset

GPU_PRESETS = ["qwen2.5-3b-grpo", "qwen2.5-7b-trac"]


def test_presets_exist():
    names = preset_names()
    assert "cpu-tiny" in names
    assert set(GPU_PRESETS) <= set(names)


@pytest.mark.parametrize("name", preset_names())
def test_preset_builds_every_config_object(name):
    cfg = TrainConfig.from_yaml(resolve_preset(name))
    cfg.curriculum.validate()
    env_config(cfg)
    rollout_config(cfg)
    if cfg.estimator != "grpo":
        assert trac_config(cfg).estimator == cfg.estimator
    args = grpo_args(cfg)
    assert args.num_generations == cfg.grpo.num_generations
    assert args.learning_rate == cfg.grpo.learning_rate
    assert args.max_steps == cfg.grpo.max_steps
    assert args.generation_batch_size % args.num_generations == 0
    if cfg.lora.enabled:
        assert _peft_config(cfg).r == cfg.lora.r
    assert TrainConfig.from_yaml(cfg.to_yaml()) == cfg  # round-trips through YAML


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_presets_use_vllm_colocate(name):
    cfg = TrainConfig.from_yaml(resolve_preset(name))
    assert cfg.grpo.use_vllm and cfg.grpo.vllm_mode == "colocate"
    assert cfg.grpo.bf16 and cfg.model.dtype == "bfloat16"
    assert "Qwen2.5" in cfg.model.path


def test_overrides_and_errors():
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(["grpo.max_steps=7", "estimator=grpo"])
    assert cfg.grpo.max_steps == 7 and cfg.estimator == "grpo"
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.override(["grpo.max_stepz=7"])
    with pytest.raises(ConfigError, match="neither a YAML file nor a preset"):
        resolve_preset("no-such-preset")
    bad = cfg.override(["grpo.per_device_train_batch_size=6"])
    with pytest.raises(ConfigError, match="multiple"):
        bad.validate()
    with pytest.raises(ConfigError, match="equal_groups"):
        cfg.override(["equal_groups=maybe"]).validate()


def test_rollout_samples_at_trl_temperature():
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(["grpo.temperature=0.6"])
    assert rollout_config(cfg).temperature == 0.6
    bad = TrainConfig.from_dict({**cfg.to_dict(), "rollout": {"temperature": 0.9}})
    with pytest.raises(ConfigError, match="grpo.temperature"):
        rollout_config(bad)
