"""`TrainConfig`: everything one `searchgym train` run needs, as one YAML file.

Sections that belong to other stages (env, rollout, trac) are kept as plain mappings here and
validated by those stages' own config classes when the run starts (`TrainConfig.validate`), so a typo in any
section fails before a model is loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from searchgym.config import ConfigError, YamlConfig
from searchgym.tasks.curriculum import CurriculumConfig


@dataclass
class DataConfig(YamlConfig):
    world: str = "runs/demo/world"  # world directory (built by `searchgym world build`)
    tasks: str = ""  # tasks file or directory; empty = the world's default task set
    eval_split: str = "test"
    backend: str | None = None  # search backend; None = the index's default
    pass_rates: str = ""  # teacher pass rates file for TRAC's w_P (docs/trac.md); empty = w_P unknown


@dataclass
class ModelConfig(YamlConfig):
    path: str = (
        "runs/demo/student"  # a `save_pretrained` directory (tiny model, SFT output, or a HF checkpoint)
    )
    teacher: str = ""  # teacher model directory for TRAC-GRPO and its baselines; empty = no teacher
    dtype: str = "float32"  # float32 on CPU; bfloat16 on GPUs
    # experiments only: damage the teacher's token scores, e.g. {shuffle: 0.3, invert: 0.3, seed: 0}
    # (searchgym.advantage.teacher.CorruptedTeacher); empty = the teacher as it is
    teacher_corruption: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoraConfig(YamlConfig):
    enabled: bool = False
    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class GRPOSection(YamlConfig):
    """The TRL `GRPOConfig` fields SearchGym exposes; `extra` passes any other GRPOConfig field through."""

    learning_rate: float = 5e-6  # ASearcher 7B
    num_generations: int = 8  # G: rollouts per question
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_steps: int = 200
    max_completion_length: int = 2048  # whole multi-turn trajectory (model + observation tokens)
    temperature: float = 1.0
    top_p: float = 1.0
    beta: float = 0.0  # no KL (ASearcher convention)
    epsilon: float = 0.2
    epsilon_high: float | None = 0.28
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    mask_truncated_completions: bool = False
    max_grad_norm: float = 1.0
    warmup_steps: float = 0.0  # a float < 1 is a ratio of max_steps
    weight_decay: float = 0.0
    logging_steps: int = 1
    save_steps: int = 50
    save_total_limit: int | None = 3
    bf16: bool = False
    gradient_checkpointing: bool = False
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    report_to: list[str] = field(default_factory=list)  # "trackio", "tensorboard", "wandb"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig(YamlConfig):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    lora: LoraConfig = field(default_factory=LoraConfig)
    grpo: GRPOSection = field(default_factory=GRPOSection)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)  # stages, replay, promotion
    success_reward: float = 0.5  # answer score (before shaping and format gate) that counts as a success
    equal_groups: str = "drop"  # groups with all-equal rewards: "drop" (out of the loss) or "count" [ours]
    estimator: str = "grpo"  # advantage estimator by name: grpo | trac | uncalibrated | reward_mix | distill
    env: dict[str, Any] = field(default_factory=dict)  # searchgym.env EnvConfig fields
    rollout: dict[str, Any] = field(default_factory=dict)  # searchgym.rollout RolloutConfig fields
    trac: dict[str, Any] = field(default_factory=dict)  # searchgym.advantage TRACConfig fields
    output_dir: str = "runs/train"
    seed: int = 0

    def validate(self) -> None:
        """Build every sub-config object (without loading weights) so mistakes fail fast."""
        self.curriculum.validate()
        if self.equal_groups not in ("drop", "count"):
            raise ConfigError(f"equal_groups: {self.equal_groups!r} is not 'drop' or 'count'")
        if self.grpo.per_device_train_batch_size % self.grpo.num_generations and not self.grpo.extra.get(
            "generation_batch_size"
        ):
            raise ConfigError(
                f"grpo.per_device_train_batch_size ({self.grpo.per_device_train_batch_size}) must be a multiple "
                f"of grpo.num_generations ({self.grpo.num_generations}) on one device"
            )
        bad = set(self.model.teacher_corruption) - {"shuffle", "invert", "seed"}
        if bad:
            raise ConfigError(
                f"model.teacher_corruption: unknown keys {sorted(bad)}; allowed: shuffle, invert, seed"
            )
        env_config(self)
        rollout_config(self)
        if self.estimator != "grpo":
            trac_config(self)
        grpo_args(self)


def env_config(cfg: TrainConfig) -> Any:
    from searchgym.env.env import EnvConfig

    return EnvConfig.from_dict(cfg.env, where="env")


def rollout_config(cfg: TrainConfig) -> Any:
    """The rollout samples at TRL's temperature / top_p: TRL recomputes log-probs at `grpo.temperature`, so a
    different sampling temperature would silently bias the importance ratio."""
    from searchgym.rollout.episodes import RolloutConfig

    for key in ("temperature", "top_p"):
        if key in cfg.rollout and cfg.rollout[key] != getattr(cfg.grpo, key):
            raise ConfigError(
                f"rollout.{key}={cfg.rollout[key]} differs from grpo.{key}; set grpo.{key} only"
            )
    sampling = {"temperature": cfg.grpo.temperature, "top_p": cfg.grpo.top_p}
    return RolloutConfig.from_dict({**cfg.rollout, **sampling}, where="rollout")


def trac_config(cfg: TrainConfig) -> Any:
    from searchgym.advantage.config import TRACConfig

    return TRACConfig.from_dict({"estimator": cfg.estimator, **cfg.trac}, where="trac")


def grpo_args(cfg: TrainConfig) -> Any:
    """TRL `GRPOConfig` for this run (CPU-safe: no bf16 unless asked)."""
    from trl import GRPOConfig

    g = cfg.grpo
    fields = {k: v for k, v in g.to_dict().items() if k != "extra"}
    report_to = fields.pop("report_to") or "none"
    try:
        return GRPOConfig(
            output_dir=cfg.output_dir,
            seed=cfg.seed,
            data_seed=cfg.seed,
            report_to=report_to,
            save_strategy="steps",
            logging_strategy="steps",
            remove_unused_columns=False,
            use_cpu=not _has_gpu(),
            log_completions=False,
            **fields,
            **g.extra,
        )
    except (TypeError, ValueError) as e:
        raise ConfigError(f"grpo: TRL GRPOConfig refused these settings: {e}") from e


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()
