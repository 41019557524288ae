"""Every shipped preset builds all its config objects (TrainConfig, TRL GRPOConfig, env, rollout, TRAC,
curriculum, LoRA) without loading any weights."""

from __future__ import annotations

import pytest

from searchgym.config import ConfigError
from searchgym.trainer.config import TrainConfig, grpo_args, rollout_config
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
    cfg.validate()
    assert rollout_config(cfg).temperature == cfg.grpo.temperature
    args = grpo_args(cfg)
    assert not args.shuffle_dataset  # the curriculum stream is the data order
    assert args.num_generations == cfg.grpo.num_generations
    assert args.learning_rate == cfg.grpo.learning_rate
    assert args.max_steps == cfg.grpo.max_steps
    assert args.generation_batch_size % args.num_generations == 0
    if cfg.lora.enabled:
        assert _peft_config(cfg).r == cfg.lora.r
    assert TrainConfig.from_yaml_text(cfg.to_yaml()) == cfg  # round-trips through YAML


@pytest.mark.parametrize("name", GPU_PRESETS)
def test_gpu_presets_use_vllm_colocate(name):
    cfg = TrainConfig.from_yaml(resolve_preset(name))
    assert cfg.grpo.use_vllm and cfg.grpo.vllm_mode == "colocate"
    assert cfg.grpo.bf16 and cfg.model.dtype == "bfloat16"
    assert "Qwen2.5" in cfg.model.path


def test_vllm_mode_picks_the_rollout_generator():
    from searchgym.trainer.config import generator_kind

    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny"))
    assert generator_kind(cfg) == "hf"
    assert generator_kind(cfg.override(["grpo.use_vllm=true"])) == "vllm"
    server = cfg.override(["grpo.use_vllm=true", "grpo.vllm_mode=server"])
    assert generator_kind(server) == "openai"
    assert grpo_args(server).vllm_server_base_url == "http://127.0.0.1:8000"  # TRL syncs into the same server


def test_overrides_and_errors():
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(["grpo.max_steps=7", "estimator=grpo"])
    assert cfg.grpo.max_steps == 7 and cfg.estimator == "grpo"
    with pytest.raises(ConfigError, match="unknown key"):
        cfg.override(["grpo.max_stepz=7"])
    with pytest.raises(ConfigError, match="neither a YAML file nor a preset"):
        resolve_preset("no-such-preset")
    bad = cfg.override(["grpo.per_device_train_batch_size=6"])
    with pytest.raises(ConfigError, match="divisible by num_generations"):
        bad.validate()
    with pytest.raises(ConfigError, match="equal_groups"):
        cfg.override(["equal_groups=maybe"])


def test_rollout_samples_at_trl_temperature():
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(["grpo.temperature=0.6"])
    assert (
        rollout_config(cfg).temperature == 0.6 and cfg.rollout.temperature == 1.0
    )  # the section is unchanged
    with pytest.raises(ConfigError, match="grpo.temperature"):
        TrainConfig.from_dict({**cfg.to_dict(), "rollout": {"temperature": 0.9}})


def test_sections_are_typed_all_the_way_down():
    from searchgym.advantage.config import TeacherConfig, TRACConfig
    from searchgym.env.config import EnvConfig
    from searchgym.rollout.episodes import RolloutConfig

    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny"))
    assert isinstance(cfg.env, EnvConfig) and isinstance(cfg.rollout, RolloutConfig)
    assert isinstance(cfg.trac, TRACConfig) and isinstance(cfg.teacher, TeacherConfig)
    assert cfg.override(["env.max_turns=3"]).env.max_turns == 3
    for typo in ("env.max_turnz=3", "rollout.max_new_tokenz=3", "trac.lamda=0.2", "teacher.kinds=hf"):
        with pytest.raises(ConfigError, match="unknown key"):
            cfg.override([typo])
    with pytest.raises(ConfigError, match="model.teacher"):
        cfg.override(["model.teacher=x"])  # moved to the teacher section


def test_grpo_extra_is_a_pure_pass_through():
    cfg = TrainConfig.from_yaml(resolve_preset("cpu-tiny")).override(
        ["grpo.extra={disable_tqdm: true, seed: 3}"]
    )
    with pytest.raises(ConfigError, match="seed"):  # a GRPOConfig field we set ourselves: TRL sees it twice
        grpo_args(cfg)
    args = grpo_args(cfg.override(["grpo.extra={disable_tqdm: true, dataloader_num_workers: 0}"]))
    assert args.disable_tqdm is True


# issue 16: the CLI refuses nonsense with one clear line and exit 2, before anything is built
BAD_TRAIN = [
    (["env.max_turnz=3"], "max_turnz"),
    (["grpo.num_generations=0"], "num_generations=0"),
    (["grpo.num_generations=1"], "num_generations=1"),
    (["grpo.max_steps=-1"], "max_steps=-1"),
    (["grpo.max_steps=0"], "max_steps=0"),
    (["grpo.max_steps=[1"], "max_steps"),
    (["estimator=bogus"], "bogus"),
    (["teacher.kind=", "estimator=trac"], "needs a teacher"),
    (["teacher.kind=hf", "teacher.path="], "teacher.path"),
    (["env.max_turns=0"], "max_turns"),
    (["curriculum.window=0"], "window"),
    (["log_rollouts=-1"], "log_rollouts"),
    (["grpo.vllm_mode=remote"], "vllm_mode"),
    (["grpo.use_vllm=true", "grpo.vllm_mode=server"], "needs a CUDA device"),  # TRL syncs weights over NCCL
]


def _cli(argv: list[str], monkeypatch, capsys) -> tuple[int, str]:
    """Run `searchgym ARGV` in this process the way the console script does (errors -> one line, exit 2)."""
    from searchgym.cli import main

    monkeypatch.setattr("sys.argv", ["searchgym", *argv])
    with pytest.raises(SystemExit) as done:
        main()
    return done.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("overrides", "word"), BAD_TRAIN, ids=[" ".join(o) for o, _ in BAD_TRAIN])
def test_train_cli_refuses_bad_values(overrides, word, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out"
    code, err = _cli(["train", "--config", "cpu-tiny", *overrides, f"output_dir={out}"], monkeypatch, capsys)
    assert code == 2 and word in err and err.count("\n") == 1, err
    assert not out.exists()  # refused before anything was written


def test_a_typo_is_refused_before_torch_is_imported():
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['searchgym', 'train', '--config', 'cpu-tiny', 'env.max_turnz=3']\n"
        "from searchgym.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    print(e.code, 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["2", "False"] and "max_turnz" in done.stderr


def test_sft_cli_refuses_negative_steps(tmp_path, monkeypatch, capsys):
    argv = ["sft", "--world", str(tmp_path), "--transcripts", "x.jsonl", "--out", str(tmp_path / "m")]
    code, err = _cli([*argv, "--steps", "-1"], monkeypatch, capsys)
    assert code == 2 and "max_steps=-1" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("name", ["deepspeed_zero2", "deepspeed_zero3", "fsdp", "multi_node"])
def test_shipped_accelerate_configs_load(name):
    """accelerate's own loader reads them (a dataclass: unknown top-level keys are refused)."""
    from pathlib import Path

    from accelerate.commands.config.config_args import load_config_from_file

    path = Path(__file__).parents[1] / "examples" / "accelerate" / f"{name}.yaml"
    cfg = load_config_from_file(str(path))
    assert cfg.distributed_type in ("DEEPSPEED", "FSDP") and cfg.num_processes >= 8 and not cfg.use_cpu
