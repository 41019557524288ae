#!/usr/bin/env bash
# TRAC-GRPO on SearchGym, Qwen2.5-7B, one 8-GPU node: bash examples/verl/run_trac_qwen2.5-7b.sh [hydra overrides...]
# Needs a teacher served elsewhere (its own GPUs) by an OpenAI-compatible server with prompt log-probs and the
# student's tokenizer, e.g. on the teacher host:
#   vllm serve Qwen/Qwen2.5-32B-Instruct --served-model-name teacher --max-logprobs 20 --port 8001
# TEACHER_ENDPOINT (http://teacher-host:8001), TEACHER_MODEL (teacher) and TEACHER_TOKENIZER (a local copy of the
# teacher's tokenizer) are read by agent_loop_trac.yaml. PASS_RATES (optional): `searchgym teacher` pass rates
# by task id for w_P. Settings: common.sh.
set -euo pipefail
AGENT_LOOP_CONFIG=${AGENT_LOOP_CONFIG:-$(cd "$(dirname "$0")" && pwd)/agent_loop_trac.yaml}
source "$(dirname "$0")/common.sh"

export TEACHER_ENDPOINT=${TEACHER_ENDPOINT:-http://127.0.0.1:8001}
export TEACHER_MODEL=${TEACHER_MODEL:-teacher}
export TEACHER_TOKENIZER=${TEACHER_TOKENIZER:-}
trac=(
  algorithm.adv_estimator=searchgym_trac
  trainer.v1.trainer_mode=searchgym_sync
  trainer.experiment_name="${EXPERIMENT:-trac-qwen2.5-7b}"
)
[[ -n ${PASS_RATES:-} ]] && trac+=(+algorithm.searchgym.pass_rates="$PASS_RATES")

print_or_train "${base_overrides[@]}" "${trac[@]}" "$@"
