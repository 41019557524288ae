#!/usr/bin/env bash
# GRPO on SearchGym, Qwen2.5-7B, one 8-GPU node: bash examples/verl/run_grpo_qwen2.5-7b.sh [hydra overrides...]
# Starts `searchgym serve $WORLD` on :$PORT, then verl's PPO trainer with the SearchGym agent loop and our
# GRPO estimator (searchgym_grpo = searchgym.advantage's GRPO, the TRAC run's baseline). Settings: common.sh.
set -euo pipefail
source "$(dirname "$0")/common.sh"

print_or_train "${base_overrides[@]}" \
  algorithm.adv_estimator=searchgym_grpo \
  trainer.experiment_name="${EXPERIMENT:-grpo-qwen2.5-7b}" \
  "$@"
