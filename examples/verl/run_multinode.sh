#!/usr/bin/env bash
# The same trainer on NNODES x 8 GPUs with Ray. Run on every node (the data and world at the same DATA_DIR on each,
# e.g. a shared filesystem, and the same python environment):
#   head:    ROLE=head   NNODES=2 bash examples/verl/run_multinode.sh [grpo|trac] [hydra overrides...]
#   workers: ROLE=worker HEAD_ADDR=<head ip> bash examples/verl/run_multinode.sh
# Every node starts its own `searchgym serve` on 127.0.0.1:$PORT (agent-loop workers run on every node and call
# their local server). Workers join the head's Ray cluster and block; the head waits for NNODES nodes, then runs
# run_<grpo|trac>_qwen2.5-7b.sh's overrides with trainer.nnodes=$NNODES. TRAC: export TEACHER_* on every node.
set -euo pipefail
source "$(dirname "$0")/common.sh"
ROLE=${ROLE:?set ROLE=head or ROLE=worker}
RAY_PORT=${RAY_PORT:-6379}

if [[ $ROLE == worker ]]; then
  start_retrieval_server
  ray start --address="${HEAD_ADDR:?set HEAD_ADDR to the head node ip}:$RAY_PORT" --num-gpus="$GPUS_PER_NODE" --block
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
ray start --head --port="$RAY_PORT" --num-gpus="$GPUS_PER_NODE"
trap 'ray stop; kill "${SERVER_PID:-}" 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  alive=$("$PYTHON" -c 'import ray; ray.init(address="auto", logging_level="error"); print(sum(n["Alive"] for n in ray.nodes()))')
  [[ $alive -ge $NNODES ]] && break
  sleep 2
done
[[ $alive -ge $NNODES ]] || { echo "error: $alive of $NNODES Ray nodes joined in 20 min" >&2; exit 1; }
RAY_ADDRESS=auto "$PYTHON" -m verl.trainer.main_ppo "${overrides[@]}"
