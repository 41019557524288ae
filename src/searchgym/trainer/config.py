"""`TrainConfig`: everything one `searchgym train` run needs, as one YAML file.

Every section is a typed config of its stage (EnvConfig, RolloutConfig, TRACConfig, TeacherConfig, CurriculumConfig),
so a typo or an out-of-range value anywhere is refused while the YAML and the overrides are read, before a world, an
index or weights are loaded. `validate()` adds the checks that need the registries (estimator names) or TRL.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from searchgym.advantage.config import TeacherConfig, TRACConfig
from searchgym.config import ConfigError, YamlConfig
from searchgym.env.config import EnvConfig
from searchgym.rollout.episodes import RolloutConfig
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
    dtype: str = "float32"  # float32 on CPU; bfloat16 on GPUs

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, where: str = "") -> ModelConfig:
        moved = {"teacher": "teacher.kind: hf and teacher.path", "teacher_corruption": "teacher.corruption"}
        for key in set(data or {}) & set(moved):
            raise ConfigError(f"model.{key} moved: set {moved[key]} instead")
        return super().from_dict(data, where)

    def __post_init__(self) -> None:
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ConfigError(f"model.dtype: {self.dtype!r} is not float32, bfloat16 or float16")


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
    """The TRL `GRPOConfig` fields SearchGym exposes; `extra` passes any other GRPOConfig field through unchanged."""

    learning_rate: float = 5e-6  # ASearcher 7B
    num_generations: int = 8  # G: rollouts per question
    per_device_train_batch_size: int = 8
    gradient_accumulation_steps: int = 1
    max_steps: int = 200
    max_completion_length: int = 2048  # whole multi-turn trajectory (model + observation tokens)
    temperature: float = 1.0  # also the rollout's sampling temperature (TRL recomputes log-probs at it)
    top_p: float = 1.0  # also the rollout's top_p
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
    # colocate: TRL's engine in each process | server: a `vllm serve` at vllm_server_base_url that TRL syncs the
    # policy into and the rollout generates from
    vllm_mode: str = "colocate"
    vllm_server_base_url: str = "http://127.0.0.1:8000"
    vllm_gpu_memory_utilization: float = 0.3
    vllm_tensor_parallel_size: int = 1
    report_to: list[str] = field(default_factory=list)  # "trackio", "tensorboard", "wandb"
    extra: dict[str, Any] = field(default_factory=dict)  # any other GRPOConfig field, passed through

    def __post_init__(self) -> None:
        at_least = {
            "num_generations": (self.num_generations, 2),  # a group needs two rollouts to have a baseline
            "per_device_train_batch_size": (self.per_device_train_batch_size, 1),
            "gradient_accumulation_steps": (self.gradient_accumulation_steps, 1),
            "max_steps": (self.max_steps, 1),  # the curriculum stream is endless: the run length is max_steps
            "max_completion_length": (self.max_completion_length, 1),
            "logging_steps": (self.logging_steps, 1),
            "save_steps": (self.save_steps, 1),
        }
        bad = [f"grpo.{k}={v} (must be >= {low})" for k, (v, low) in at_least.items() if v < low]
        if not self.learning_rate > 0:
            bad.append(f"grpo.learning_rate={self.learning_rate} (must be > 0)")
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            bad.append(
                f"grpo.temperature={self.temperature}, top_p={self.top_p} (temperature > 0, top_p in (0, 1])"
            )
        if self.scale_rewards not in ("group", "batch", "none"):
            bad.append(f"grpo.scale_rewards={self.scale_rewards!r} (group | batch | none)")
        if self.vllm_mode not in ("colocate", "server"):
            bad.append(f"grpo.vllm_mode={self.vllm_mode!r} (colocate | server)")
        if bad:
            raise ConfigError("; ".join(bad))


@dataclass
class TrainConfig(YamlConfig):
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)  # the scorer of TRAC and its baselines
    lora: LoraConfig = field(default_factory=LoraConfig)
    grpo: GRPOSection = field(default_factory=GRPOSection)
    curriculum: CurriculumConfig = field(default_factory=CurriculumConfig)  # stages, replay, promotion
    equal_groups: str = "drop"  # groups with all-equal rewards: "drop" (out of the loss) or "count" [ours]
    estimator: str = "grpo"  # advantage estimator by name (`searchgym trac estimators`)
    env: EnvConfig = field(default_factory=EnvConfig)  # success = env.success_metric >= env.success_threshold
    rollout: RolloutConfig = field(default_factory=RolloutConfig)  # temperature / top_p come from grpo
    trac: TRACConfig = field(default_factory=TRACConfig)
    log_rollouts: int = 4  # rollouts per logging step written to output_dir/rollouts.jsonl; 0 = none
    log_rollouts_max_bytes: int = 64 * 2**20  # hard cap of rollouts.jsonl: oldest steps are thinned out
    output_dir: str = "runs/train"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.equal_groups not in ("drop", "count"):
            raise ConfigError(f"equal_groups: {self.equal_groups!r} is not 'drop' or 'count'")
        if self.log_rollouts < 0 or self.log_rollouts_max_bytes < 4096:
            raise ConfigError(
                f"log_rollouts={self.log_rollouts} must be >= 0 and log_rollouts_max_bytes="
                f"{self.log_rollouts_max_bytes} >= 4096"
            )
        default = RolloutConfig()
        for key in ("temperature", "top_p"):
            mine, trl = getattr(self.rollout, key), getattr(self.grpo, key)
            if mine != getattr(default, key) and mine != trl:
                raise ConfigError(f"rollout.{key}={mine} differs from grpo.{key}={trl}; set grpo.{key} only")

    def validate(self) -> None:
        """The checks that need the estimator registry and TRL (still without loading anything)."""
        from searchgym.advantage.estimators import estimator_spec

        try:
            spec = estimator_spec(self.estimator)
        except ValueError as e:
            raise ConfigError(f"estimator: {e}") from e
        if spec.needs_teacher and not self.teacher.kind:
            raise ConfigError(
                f"estimator {self.estimator!r} needs a teacher: set teacher.kind (hf | openai) and its path or "
                "endpoint"
            )
        self.curriculum.validate()
        grpo_args(self)


def rollout_config(cfg: TrainConfig) -> RolloutConfig:
    """The rollout samples at TRL's temperature / top_p: TRL recomputes log-probs at `grpo.temperature`, so a
    different sampling temperature would silently bias the importance ratio."""
    return dataclasses.replace(cfg.rollout, temperature=cfg.grpo.temperature, top_p=cfg.grpo.top_p)


def generator_kind(cfg: TrainConfig) -> str:
    """The `GENERATORS` backend the training rollout uses: TRL's colocated vLLM engine, the vLLM server TRL syncs
    the policy into (through its OpenAI-compatible completions API), or the policy itself."""
    if not cfg.grpo.use_vllm:
        return "hf"
    return "vllm" if cfg.grpo.vllm_mode == "colocate" else "openai"


def grpo_args(cfg: TrainConfig) -> Any:
    """TRL `GRPOConfig` for this run (CPU-safe: no bf16 unless asked). The curriculum is the data order, so TRL
    must not shuffle it."""
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
            shuffle_dataset=False,
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
