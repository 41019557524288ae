"""The verl recipe in examples/verl/ against verl 0.9.1's own code: prepare_data.sh builds a real tiny world, index,
task set and parquet that verl's RLHFDataset loads under the composed data config; the overrides each run_*.sh
script would pass (printed by the script itself with SEARCHGYM_PRINT_OVERRIDES=1, so the test checks the scripts)
compose with verl's hydra trainer config (verl/trainer/config/ppo_trainer.yaml in the installed package) and name
estimators, a trainer mode and an agent loop that verl's registries resolve to ours. Nothing here trains: that
needs GPUs (examples/verl/README.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

verl = pytest.importorskip(
    "verl", reason='verl is not installed: pip install "searchgym[verl]" + --no-deps verl'
)

from hydra import compose, initialize_config_dir  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from verl.trainer.ppo.core_algos import get_adv_estimator_fn  # noqa: E402
from verl.trainer.ppo.utils import need_critic, need_reference_policy  # noqa: E402
from verl.trainer.ppo.v1 import get_trainer_cls  # noqa: E402
from verl.utils.config import omega_conf_to_dataclass, validate_config  # noqa: E402
from verl.utils.dataset.rl_dataset import RLHFDataset  # noqa: E402

from searchgym.advantage.config import TeacherConfig  # noqa: E402
from searchgym.env.protocol import PROTOCOL_TAGS  # noqa: E402
from searchgym.integrations.verl.advantage import ESTIMATOR_FNS, SearchGymTrainer  # noqa: E402
from searchgym.models.tiny import train_tokenizer  # noqa: E402

RECIPE = Path(__file__).resolve().parents[1] / "examples" / "verl"
VERL_CONFIG = Path(verl.__file__).parent / "trainer" / "config"
TINY = {
    "ENTITIES": "200",
    "TASK_SETS": "max_hops=2 chain_per_hops=30 obfuscated=0 intersection=0 comparison=0",
}
# script, its arguments, extra environment -> the estimator and v1 trainer mode it must select
RUNS = {
    "grpo": ("run_grpo_qwen2.5-7b.sh", [], {}, "searchgym_grpo", "sync"),
    "trac": ("run_trac_qwen2.5-7b.sh", [], {"PASS_RATES": "/p.json"}, "searchgym_trac", "searchgym_sync"),
    "multinode-grpo": (
        "run_multinode.sh",
        ["grpo"],
        {"ROLE": "head", "NNODES": "2"},
        "searchgym_grpo",
        "sync",
    ),
    "multinode-trac": (
        "run_multinode.sh",
        ["trac"],
        {"ROLE": "head", "NNODES": "2", "PASS_RATES": "/p.json"},
        "searchgym_trac",
        "searchgym_sync",
    ),
}


def script_env(**extra: str) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)  # the venv's `searchgym`
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OMP_NUM_THREADS": "1", **extra}


def overrides_of(script: str, args: list[str], data_dir: Path, **env: str) -> list[str]:
    r = subprocess.run(
        ["bash", str(RECIPE / script), *args],
        env=script_env(DATA_DIR=str(data_dir), SEARCHGYM_PRINT_OVERRIDES="1", **env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.splitlines()


def composed(overrides: list[str]):
    with initialize_config_dir(config_dir=str(VERL_CONFIG), version_base=None):
        return compose(config_name="ppo_trainer", overrides=overrides)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("verl_data")
    r = subprocess.run(
        ["bash", str(RECIPE / "prepare_data.sh"), str(out)],
        env=script_env(**TINY),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return out


def test_prepare_data_builds_what_verls_dataset_loads(data_dir):
    world = data_dir / "world"
    assert (world / "corpus.jsonl").is_file() and any((world / "index" / "bm25s").iterdir())
    tasks = [
        json.loads(line) for line in (world / "tasks" / "train" / "tasks.jsonl").read_text().splitlines()
    ]
    cfg = composed(overrides_of("run_grpo_qwen2.5-7b.sh", [], data_dir))
    assert cfg.data.train_files == str(data_dir / "train.parquet")
    prompts = [t["question"] for t in tasks]
    tok = train_tokenizer(prompts * 5, vocab_size=2000, special_tokens=PROTOCOL_TAGS)
    for split, path in (("train", cfg.data.train_files), ("dev", cfg.data.val_files)):
        expected = [t for t in tasks if t["split"] == split]
        ds = RLHFDataset(data_files=path, tokenizer=tok, config=cfg.data)
        assert len(ds) == len(expected) > 0  # none dropped as over-long under max_prompt_length
        for i, task in enumerate(expected):
            row = ds[i]
            assert row["agent_name"] == cfg.actor_rollout_ref.rollout.agent.default_agent_loop == "searchgym"
            assert row["data_source"] == "searchgym"
            assert set(row["reward_model"]["ground_truth"]["target"]) == {task["answer"], *task["aliases"]}
            extra = row["extra_info"]
            assert extra["task_id"] == task["id"] and extra["world"] == str(world)
            assert json.loads(extra["env"])["max_turns"] == 8
            assert task["question"] in row["raw_prompt"][-1]["content"]


@pytest.mark.parametrize("run", sorted(RUNS))
def test_run_script_overrides_compose_with_verls_trainer_config(run, tmp_path, monkeypatch):
    script, args, env, estimator, mode = RUNS[run]
    cfg = composed(overrides_of(script, args, tmp_path, **env))
    OmegaConf.resolve(cfg)  # every interpolation of verl's config resolves with our values
    # main_ppo's own check before it starts Ray
    validate_config(cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg))
    assert need_reference_policy(cfg) and not need_critic(cfg)  # KL loss needs the reference; GRPO no critic
    assert cfg.algorithm.adv_estimator == estimator
    assert get_adv_estimator_fn(cfg.algorithm.adv_estimator) is ESTIMATOR_FNS[estimator]
    # verl's trainers hand the DictConfig itself to the estimator (so `algorithm.searchgym` reaches it); the rest
    # must still be a valid AlgoConfig, and the rollout and actor sections valid dataclasses
    verl_keys = [k for k in cfg.algorithm if k != "searchgym"]
    assert omega_conf_to_dataclass(OmegaConf.masked_copy(cfg.algorithm, verl_keys)).adv_estimator == estimator
    rollout_cfg = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert (
        rollout_cfg.agent.default_agent_loop == "searchgym"
        and rollout_cfg.multi_turn.max_assistant_turns == 8
    )
    assert omega_conf_to_dataclass(cfg.actor_rollout_ref.actor).use_kl_loss
    assert cfg.trainer.v1.trainer_mode == mode and cfg.trainer.use_v1
    if mode == "searchgym_sync":
        assert get_trainer_cls(mode) is SearchGymTrainer
        assert cfg.algorithm.searchgym.pass_rates == "/p.json"
    assert cfg.trainer.nnodes == (2 if run.startswith("multinode") else 1)
    assert cfg.trainer.n_gpus_per_node == 8
    rollout = cfg.actor_rollout_ref.rollout
    assert (rollout.name, rollout.mode, rollout.multi_turn.enable) == ("vllm", "async", True)
    assert cfg.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B"
    assert cfg.data.train_files == str(tmp_path / "train.parquet")
    loops = OmegaConf.load(rollout.agent.agent_loop_config_path)  # as verl's AgentLoopWorker reads it
    entry = next(e for e in loops if e.name == rollout.agent.default_agent_loop)
    assert entry._target_ == "searchgym.integrations.verl.agent_loop.SearchGymAgentLoop"
    if mode == "searchgym_sync":
        monkeypatch.setenv("TEACHER_ENDPOINT", "http://teacher-host:8001")  # read in each agent-loop worker
        teacher = TeacherConfig.from_dict(
            OmegaConf.to_container(entry.teacher, resolve=True), where="teacher"
        )
        assert (teacher.kind, teacher.endpoint, teacher.model) == (
            "openai",
            "http://teacher-host:8001",
            "teacher",
        )
    else:
        assert "teacher" not in entry


def test_multinode_refuses_a_bad_role(tmp_path):
    r = subprocess.run(
        ["bash", str(RECIPE / "run_multinode.sh")],
        env=script_env(DATA_DIR=str(tmp_path), ROLE="nope"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "use head or worker" in r.stderr


def test_run_script_starts_the_retrieval_server_then_the_trainer(data_dir, tmp_path):
    """Everything but verl's trainer: `searchgym serve` on the prepared world answers /health and /retrieve before
    the trainer command starts (a stand-in that records what it was run with), and is stopped when the script ends."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    record = tmp_path / "trainer.txt"
    trainer = tmp_path / "python"
    trainer.write_text(
        "#!/usr/bin/env bash\n"
        f'{{ echo "$@"; curl -sf http://127.0.0.1:{port}/health; echo; '
        f'curl -sf -X POST -H \'Content-Type: application/json\' -d \'{{"queries": ["parent"], "topk": 2}}\' '
        f"http://127.0.0.1:{port}/retrieve; }} > {record}\n"
    )
    trainer.chmod(0o755)
    r = subprocess.run(
        ["bash", str(RECIPE / "run_grpo_qwen2.5-7b.sh"), "trainer.total_training_steps=1"],
        env=script_env(DATA_DIR=str(data_dir), PORT=str(port), PYTHON=str(trainer), SERVE_WORKERS="1"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    args, health, retrieved = record.read_text().splitlines()
    assert args.startswith("-m verl.trainer.main_ppo ") and args.endswith(" trainer.total_training_steps=1")
    assert "algorithm.adv_estimator=searchgym_grpo" in args.split()
    assert health and len(json.loads(retrieved)["result"][0]) == 2
    with socket.socket() as s:  # the server is gone: the port binds again
        s.bind(("127.0.0.1", port))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multinode_head_and_worker_form_a_ray_cluster_then_train(data_dir, tmp_path):
    """run_multinode.sh for real on one machine: a ROLE=worker node (started first, so it must wait for the head)
    and the ROLE=head node each start their retrieval server; the worker joins the head's token-authenticated Ray
    cluster (Ray 2.60); the head waits for NNODES=2 alive nodes, then starts the trainer. verl's trainer needs
    GPUs, so a stand-in `python` records what `-m verl.trainer.main_ppo` was called with, the Ray nodes it sees
    and both nodes' servers; every other `python` call goes to the real interpreter."""
    ray_port, head_port, worker_port = _free_port(), _free_port(), _free_port()
    record = tmp_path / "trainer.txt"
    stand_in = tmp_path / "python"
    nodes = 'import ray; ray.init(address="auto", logging_level="error"); print(sum(n["Alive"] for n in ray.nodes()))'
    stand_in.write_text(
        "#!/usr/bin/env bash\n"
        'if [[ "$1 $2" == "-m verl.trainer.main_ppo" ]]; then\n'
        "  shift 2\n"
        f"  {{ echo \"$@\"; {sys.executable} -c '{nodes}'; "
        f"curl -sf http://127.0.0.1:{head_port}/health; echo; curl -sf http://127.0.0.1:{worker_port}/health; }}"
        f" > {record}\n"
        "  exit 0\n"
        "fi\n"
        f'exec {sys.executable} "$@"\n'
    )
    stand_in.chmod(0o755)
    common = {"DATA_DIR": str(data_dir), "RAY_PORT": str(ray_port), "GPUS_PER_NODE": "0", "SERVE_WORKERS": "1",
              "RAY": str(Path(sys.executable).parent / "ray"), "PYTHON": str(stand_in)}  # fmt: skip
    script = ["bash", str(RECIPE / "run_multinode.sh")]
    worker_log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 (closed below, after the worker exits)
    worker = subprocess.Popen(
        script,
        env=script_env(**common, ROLE="worker", HEAD_ADDR="127.0.0.1", PORT=str(worker_port)),
        stdout=worker_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        head = subprocess.run(
            [*script, "grpo", "trainer.total_training_steps=1"],
            env=script_env(**common, ROLE="head", NNODES="2", PORT=str(head_port)),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert head.returncode == 0, head.stderr[-3000:]
        args, alive, head_health, worker_health = record.read_text().splitlines()
        assert "trainer.nnodes=2" in args.split() and args.endswith(" trainer.total_training_steps=1")
        assert "algorithm.adv_estimator=searchgym_grpo" in args.split()
        assert int(alive) == 2  # the worker joined the head's cluster
        assert head_health and worker_health  # each node's own retrieval server was up
        # a worker node serves until it is stopped (`ray start --block`); stopping it stops its retrieval server
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
        worker_log.close()
        subprocess.run([str(Path(sys.executable).parent / "ray"), "stop", "--force"], capture_output=True)
    for port in (head_port, worker_port):  # both retrieval servers are gone
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
