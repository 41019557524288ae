# Sourced by the run_*.sh scripts: paths, the retrieval server, and the trainer overrides GRPO and TRAC share.
# Every setting can be changed from the environment; extra hydra overrides go after the script's name.
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA_DIR=${DATA_DIR:-$HOME/data/searchgym}   # written by prepare_data.sh
WORLD=${WORLD:-$DATA_DIR/world}
MODEL=${MODEL:-Qwen/Qwen2.5-7B}
PORT=${PORT:-8000}                           # must match `endpoint:` in agent_loop*.yaml
NNODES=${NNODES:-1}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
PROJECT=${PROJECT:-searchgym}
AGENT_LOOP_CONFIG=${AGENT_LOOP_CONFIG:-$HERE/agent_loop.yaml}
SEARCHGYM=${SEARCHGYM:-searchgym}
PYTHON=${PYTHON:-python}

# One 8-GPU node (80 GB): vLLM TP=2 (4 replicas), FSDP actor and reference, 5 rollouts per question.
base_overrides=(
  data.train_files="$DATA_DIR/train.parquet"
  data.val_files="$DATA_DIR/val.parquet"
  data.train_batch_size=256
  data.max_prompt_length=1024
  data.max_response_length=3072
  data.filter_overlong_prompts=True
  data.truncation=error
  data.return_raw_chat=True
  actor_rollout_ref.model.path="$MODEL"
  actor_rollout_ref.model.use_remove_padding=True
  actor_rollout_ref.model.enable_gradient_checkpointing=True
  actor_rollout_ref.actor.optim.lr=1e-6
  actor_rollout_ref.actor.ppo_mini_batch_size=64
  actor_rollout_ref.actor.use_dynamic_bsz=True
  actor_rollout_ref.actor.ppo_max_token_len_per_gpu=16384
  actor_rollout_ref.actor.use_kl_loss=True
  actor_rollout_ref.actor.kl_loss_coef=0.001
  actor_rollout_ref.actor.kl_loss_type=low_var_kl
  actor_rollout_ref.actor.entropy_coeff=0
  actor_rollout_ref.rollout.name=vllm
  actor_rollout_ref.rollout.mode=async
  actor_rollout_ref.rollout.tensor_model_parallel_size=2
  actor_rollout_ref.rollout.gpu_memory_utilization=0.6
  actor_rollout_ref.rollout.n=5
  actor_rollout_ref.rollout.multi_turn.enable=True
  actor_rollout_ref.rollout.multi_turn.max_assistant_turns=8
  actor_rollout_ref.rollout.agent.default_agent_loop=searchgym
  actor_rollout_ref.rollout.agent.agent_loop_config_path="$AGENT_LOOP_CONFIG"
  algorithm.use_kl_in_reward=False
  critic.enable=False
  trainer.project_name="$PROJECT"
  trainer.logger='["console"]'
  trainer.nnodes="$NNODES"
  trainer.n_gpus_per_node="$GPUS_PER_NODE"
  trainer.save_freq=50
  trainer.test_freq=25
  trainer.total_epochs=1
)

# SEARCHGYM_PRINT_OVERRIDES=1: print the overrides, one a line, and exit (tests/test_verl_recipe.py composes them).
print_or_train() {
  if [[ ${SEARCHGYM_PRINT_OVERRIDES:-0} == 1 ]]; then
    printf '%s\n' "$@"
    exit 0
  fi
  start_retrieval_server
  "$PYTHON" -m verl.trainer.main_ppo "$@"
}

# `searchgym serve` on this node (the agent loop calls http://127.0.0.1:$PORT); stopped when the script exits.
start_retrieval_server() {
  if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null; then
    echo "retrieval server already up on :$PORT"
    return
  fi
  "$SEARCHGYM" serve "$WORLD" --port "$PORT" --workers "${SERVE_WORKERS:-4}" &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null; wait "$SERVER_PID" 2>/dev/null || true' EXIT
  for _ in $(seq 120); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null && return
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "error: searchgym serve $WORLD exited (built? run prepare_data.sh)" >&2; exit 1; }
    sleep 1
  done
  echo "error: searchgym serve on :$PORT not healthy after 120 s" >&2
  exit 1
}
