"""TRAC-GRPO and its baselines through verl's own advantage code: verl's registry and `compute_advantage` (and the
v1 multi-trajectory wrapper) on a real DataProto give exactly what `searchgym.advantage` gives on the same numbers;
the running w_D state, the settings and the pass rates reach the math; the v1 trainer mode hands the teacher fields
over from a real TransferQueue."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytest.importorskip("verl", reason='verl is not installed: pip install "searchgym[verl]" + --no-deps verl')

from omegaconf import OmegaConf  # noqa: E402
from verl import DataProto  # noqa: E402
from verl.trainer.ppo.core_algos import get_adv_estimator_fn  # noqa: E402
from verl.trainer.ppo.ray_trainer import compute_advantage as verl_compute_advantage  # noqa: E402

from searchgym.advantage.config import TRACConfig  # noqa: E402
from searchgym.advantage.estimators import ESTIMATORS, TRACBatch, compute_advantages  # noqa: E402
from searchgym.integrations.verl import advantage as sg_adv  # noqa: E402

B, T, N = 8, 12, 4  # rollouts, response width, group size
UIDS = np.array([f"uid-{i // N}" for i in range(B)], dtype=object)


def numbers(seed: int = 0) -> dict:
    """One batch of rollouts: right-padded responses with observation gaps, both outcomes in every group."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([12, 9, 7, 11, 5, 12, 8, 10])
    mask = (torch.arange(T)[None] < lengths[:, None]).long()
    mask[:, 3:5] = 0  # an observation inside every response
    success = torch.tensor([1, 0, 1, 0, 0, 1, 1, 0], dtype=torch.bool)
    rewards = success.float() * 0.8 + 0.1 * torch.rand(B, generator=g)
    behaviour = -torch.rand(B, T, generator=g) * 2 * mask
    teacher = -torch.rand(B, T, generator=g) * 2 * mask
    entropy = torch.rand(B, T, generator=g) * 3 * mask
    max_logp = -torch.rand(B, T, generator=g) * 0.5 * mask
    return dict(
        mask=mask,
        lengths=lengths,
        success=success,
        rewards=rewards,
        behaviour=behaviour,
        teacher=teacher,
        entropy=entropy,
        max_logp=max_logp,
    )


def data_proto(x: dict, task_ids=None) -> DataProto:
    """The DataProto verl's agent-loop worker produces: rm_scores at the last response token, our extra_fields as
    object columns (per-token lists as long as the response, as the agent loop writes them)."""
    token_rewards = torch.zeros(B, T)
    token_rewards[torch.arange(B), x["lengths"] - 1] = x["rewards"]

    def rows(t: torch.Tensor) -> np.ndarray:
        out = np.empty(B, dtype=object)
        out[:] = [t[i, : x["lengths"][i]].tolist() for i in range(B)]
        return out

    return DataProto.from_dict(
        tensors={
            "token_level_rewards": token_rewards,
            "response_mask": x["mask"],
            "old_log_probs": x["behaviour"],
        },
        non_tensors={
            "uid": UIDS,
            "teacher_logp": rows(x["teacher"]),
            "teacher_entropy": rows(x["entropy"]),
            "teacher_max_logp": rows(x["max_logp"]),
            "teacher_vocab_size": np.array([400] * B, dtype=object),
            "success": np.array([float(s) for s in x["success"]], dtype=object),
            "task_id": np.array(task_ids or [f"t{i // N}" for i in range(B)], dtype=object),
        },
    )


def ours(name: str, x: dict, cfg: TRACConfig, state=None, pass_rate=None):
    """searchgym.advantage on the same numbers (the reference)."""
    fields = dict(
        rewards=x["rewards"],
        groups=N,
        mask=x["mask"].float(),
        teacher_logp=x["teacher"],
        behaviour_logp=x["behaviour"],
        teacher_entropy=x["entropy"],
        teacher_max_logp=x["max_logp"],
        pass_rate=pass_rate if pass_rate is not None else torch.full((B,), float("nan")),
        vocab_size=400,
    )
    if "success" in TRACBatch.__dataclass_fields__:
        fields["success"] = x["success"]
    return compute_advantages(name, TRACBatch(**fields), cfg, state)


def algorithm(**searchgym) -> OmegaConf:
    return OmegaConf.create({"norm_adv_by_std_in_grpo": True, "searchgym": searchgym})


@pytest.fixture(autouse=True)
def fresh_state():
    sg_adv._states.clear()
    yield
    sg_adv._states.clear()


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_registry_compute_advantage_equals_searchgym(name):
    x = numbers()
    cfg = algorithm(trac={"lam": 0.3})
    assert get_adv_estimator_fn(f"searchgym_{name}") is sg_adv.ESTIMATOR_FNS[f"searchgym_{name}"]
    out = sg_adv.compute_advantage(data_proto(x), f"searchgym_{name}", config=cfg)
    expected, diagnostics, _ = ours(name, x, TRACConfig(lam=0.3))
    assert torch.allclose(out.batch["advantages"], expected * x["mask"], atol=1e-6)
    assert torch.equal(out.batch["returns"], out.batch["advantages"])
    assert (out.batch["advantages"][x["mask"] == 0] == 0).all()
    if "auc/mean" in diagnostics:
        assert sg_adv.metrics()["trac/auc/mean"] == pytest.approx(diagnostics["auc/mean"])


def test_v1_multi_trajectory_wrapper_and_running_state():
    """verl's v1 trainer calls compute_advantage_for_multi_trajectories: non-grpo names pass through unchanged;
    w_D's running average carries from one call to the next exactly as in searchgym."""
    from verl.trainer.ppo.v1.utils import compute_advantage_for_multi_trajectories

    cfg = algorithm()
    state = None
    for seed in (1, 2):
        x = numbers(seed)
        data = data_proto(x)
        keys = [f"{u}_{i % N}_0" for i, u in enumerate(UIDS)]
        with sg_adv.handing_over(sg_adv.inputs_from(data)):
            out = compute_advantage_for_multi_trajectories(
                data, batch_keys=keys, adv_estimator="searchgym_trac", num_repeat=N, config=cfg
            )
        expected, _, state = ours("trac", x, TRACConfig(), state)
        assert torch.allclose(out.batch["advantages"], expected * x["mask"], atol=1e-6)
    assert sg_adv._states["trac"].value == pytest.approx(state.value)


def test_settings_and_pass_rates_reach_the_math(tmp_path):
    x = numbers(3)
    rates = tmp_path / "pass_rates.json"
    rates.write_text(json.dumps({"model": "teacher", "k": 4, "pass_rates": {"t0": 0.25, "t1": 1.0}}))
    cfg = algorithm(trac={"lam": 0.5, "use_wd": False}, pass_rates=str(rates))
    out = sg_adv.compute_advantage(data_proto(x), "searchgym_trac", config=cfg)
    pass_rate = torch.tensor([0.25] * N + [1.0] * N)
    expected, _, _ = ours("trac", x, TRACConfig(lam=0.5, use_wd=False), pass_rate=pass_rate)
    assert torch.allclose(out.batch["advantages"], expected * x["mask"], atol=1e-6)
    unscaled = sg_adv.compute_advantage(
        data_proto(x), "searchgym_grpo", config=OmegaConf.create({"norm_adv_by_std_in_grpo": False})
    )
    expected, _, _ = ours("grpo", x, TRACConfig(outcome_scale=False))
    assert torch.allclose(unscaled.batch["advantages"], expected * x["mask"], atol=1e-6)
    with pytest.raises(ValueError, match="lam"):
        sg_adv.compute_advantage(data_proto(x), "searchgym_trac", config=algorithm(trac={"lamda": 1}))


def test_without_the_hook_only_teacher_free_estimators_run():
    """Plain verl compute_advantage passes no teacher fields: searchgym_grpo runs, TRAC says what to do."""
    x = numbers(4)
    data = data_proto(x)
    out = verl_compute_advantage(data, adv_estimator="searchgym_grpo", config=algorithm())
    expected, _, _ = ours("grpo", x, TRACConfig())
    assert torch.allclose(out.batch["advantages"], expected * x["mask"], atol=1e-6)
    with pytest.raises(ValueError, match="trainer_mode=searchgym_sync"):
        verl_compute_advantage(data_proto(x), adv_estimator="searchgym_trac", config=algorithm())


@pytest.mark.slow
def test_trainer_mode_hands_teacher_fields_over_from_the_transfer_queue():
    """The v1 trainer `searchgym_sync`: rows put in a real TransferQueue as verl's AgentLoopWorkerTQ puts them
    (AgentLoopOutput.as_dict() + the row's kwargs); _compute_advantage writes back the searchgym advantages."""
    ray = pytest.importorskip("ray", reason="ray is not installed")
    tq = pytest.importorskip("transfer_queue", reason="TransferQueue is not installed")
    from transfer_queue import KVBatchMeta
    from verl.experimental.agent_loop.agent_loop import AgentLoopOutput
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    x = numbers(5)
    keys, fields = [], []
    for i in range(B):
        n = int(x["lengths"][i])
        extra = {
            "teacher_logp": x["teacher"][i, :n].tolist(),
            "teacher_entropy": x["entropy"][i, :n].tolist(),
            "teacher_max_logp": x["max_logp"][i, :n].tolist(),
            "teacher_vocab_size": 400,
            "success": float(x["success"][i]),
            "task_id": f"t{i // N}",
        }
        out = AgentLoopOutput(
            prompt_ids=[1, 2, 3],
            response_ids=list(range(10, 10 + n)),
            response_mask=x["mask"][i, :n].tolist(),
            response_logprobs=x["behaviour"][i, :n].tolist(),
            reward_score=float(x["rewards"][i]),
            metrics={},
            extra_fields=extra,
        )
        field = out.as_dict() | {"uid": UIDS[i], "session_id": i % N}
        field["loss_mask"] = field["response_mask"]
        field["old_log_probs"] = field["rollout_log_probs"]  # bypass mode: old = rollout log-probs
        keys.append(f"{UIDS[i]}_{i % N}_0")
        fields.append(field)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        tq.kv_batch_put(keys=keys, partition_id="train", fields=list_of_dict_to_tensordict(fields))
        trainer = object.__new__(sg_adv.SearchGymTrainer)
        trainer.config = OmegaConf.create(
            {
                "algorithm": {
                    "adv_estimator": "searchgym_trac",
                    "gamma": 1.0,
                    "lam": 1.0,
                    "use_kl_in_reward": False,
                    "norm_adv_by_std_in_grpo": True,
                    "searchgym": {"trac": {"lam": 0.2}},
                },
                "actor_rollout_ref": {"rollout": {"n": N}},
            }
        )
        metrics: dict = {}
        batch = KVBatchMeta(keys=keys, tags=[{}] * B, partition_id="train")
        trainer._compute_advantage(batch, metrics)
        got = tq.kv_batch_get(
            keys=keys, partition_id="train", select_fields=["advantages"]
        ).to_padded_tensor()
        expected, diagnostics, _ = ours("trac", x, TRACConfig(lam=0.2))
        assert torch.allclose(got["advantages"], expected * x["mask"], atol=1e-6)
        assert metrics["trac/omega/mean"] == pytest.approx(diagnostics["omega/mean"])
    finally:
        tq.close()
        ray.shutdown()
