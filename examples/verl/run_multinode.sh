#!/usr/bin/env bash
# The same trainer on NNODES x 8 GPUs with Ray. Run on every node (the data and world at the same DATA_DIR on each,
# e.g. a shared filesystem, and the same python environment):
#   head:    ROLE=head   NNODES=2 bash examples/verl/run_multinode.sh [grpo|trac] [hydra overrides...]
#   workers: ROLE=worker HEAD_ADDR=<head ip> bash examples/verl/run_multinode.sh
# Every node starts its own `searchgym serve` on 127.0.0.1:$PORT (agent-loop workers run on every node and call
# their local server). Workers join the head's Ray cluster and block; the head waits for NNODES nodes, then runs
# run_<grpo|trac>_qwen2.5-7b.sh's overrides with trainer.nnodes=$NNODES. TRAC: export TEACHER_* on every node.
# Ray >= 2.5x starts the head with token authentication: a worker joins with the head's token, found in
# ~/.ray/auth_token (a shared home) or given as RAY_AUTH_TOKEN=$(ray get-auth-token) on the head.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROLE=${ROLE:?set ROLE=head or ROLE=worker}
RAY_PORT=${RAY_PORT:-6379}
RAY=${RAY:-ray}

if [[ $ROLE == worker ]]; then
  HEAD=${HEAD_ADDR:?set HEAD_ADDR to the head node ip}:$RAY_PORT
  export RAY_AUTH_MODE=${RAY_AUTH_MODE:-token}  # `ray start --address` does not send the token unless told
  start_retrieval_server
  for _ in $(seq 300); do  # the head may still be starting: wait up to 10 min for its port
    (exec 3<>"/dev/tcp/${HEAD_ADDR}/$RAY_PORT") 2>/dev/null && break
    sleep 2
  done
  "$RAY" start --address="$HEAD" --num-gpus="$GPUS_PER_NODE" --block
  exit 0
fi
[[ $ROLE == head ]] || { echo "error: ROLE=$ROLE; use head or worker" >&2; exit 2; }

RUN=${1:-grpo}
shift || true
case $RUN in
  grpo|trac) ;;
  *) echo "error: first argument $RUN; use grpo or trac" >&2; exit 2 ;;
esac
mapfile -t overrides < <(NNODES=$NNODES SEARCHGYM_PRINT_OVERRIDES=1 bash "$HERE/run_${RUN}_qwen2.5-7b.sh" "$@")
if [[ ${SEARCHGYM_PRINT_OVERRIDES:-0} == 1 ]]; then
  printf '%s\n' "${overrides[@]}"
  exit 0
fi

start_retrieval_server
"$RAY" start --head --port="$RAY_PORT" --num-gpus="$GPUS_PER_NODE"
trap '"$RAY" stop; kill "${SERVER_PID:-}" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  alive=$("$PYTHON" -c 'import ray; ray.init(address="auto", logging_level="error"); print(sum(n["Alive"] for n in ray.nodes()))')
  [[ $alive -ge $NNODES ]] && break
  sleep 2
done
[[ $alive -ge $NNODES ]] || { echo "error: $alive of $NNODES Ray nodes joined in 20 min" >&2; exit 1; }
RAY_ADDRESS=auto "$PYTHON" -m verl.trainer.main_ppo "${overrides[@]}"
