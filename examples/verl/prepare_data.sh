#!/usr/bin/env bash
# World -> search index -> task set -> verl parquet, with the `searchgym` CLI only.
#   bash examples/verl/prepare_data.sh [DATA_DIR]          (default: $HOME/data/searchgym)
# Writes DATA_DIR/world/ (corpus, graph, index/bm25s/, tasks/<TASKS_NAME>/), DATA_DIR/train.parquet (split train)
# and DATA_DIR/val.parquet (split dev). Size: ENTITIES (default 20000); SEED; extra `tasks build` overrides in
# TASK_SETS (e.g. TASK_SETS="chain_per_hops=30 max_hops=2"). Reruns reuse what exists (OVERWRITE=1 rebuilds).
set -euo pipefail

DATA_DIR=${1:-${DATA_DIR:-$HOME/data/searchgym}}
ENTITIES=${ENTITIES:-20000}
SEED=${SEED:-0}
TASKS_NAME=${TASKS_NAME:-train}
TASK_SETS=${TASK_SETS:-}
MAX_TURNS=${MAX_TURNS:-8}        # env max_turns written into the rows (the agent loop reads it from extra_info)
SEARCHGYM=${SEARCHGYM:-searchgym}
OVERWRITE=${OVERWRITE:-0}

WORLD="$DATA_DIR/world"
over=()
[[ $OVERWRITE == 1 ]] && over=(--overwrite)
task_sets=()
for kv in $TASK_SETS; do task_sets+=(--set "$kv"); done

mkdir -p "$DATA_DIR"
if [[ ! -f "$WORLD/corpus.jsonl" || $OVERWRITE == 1 ]]; then
  "$SEARCHGYM" world build "$WORLD" --seed "$SEED" --entities "$ENTITIES" "${over[@]}"
fi
"$SEARCHGYM" index build "$WORLD" "${over[@]}"
if [[ ! -f "$WORLD/tasks/$TASKS_NAME/tasks.jsonl" || $OVERWRITE == 1 ]]; then
  "$SEARCHGYM" tasks build "$WORLD" --name "$TASKS_NAME" "${task_sets[@]}" "${over[@]}"
fi
"$SEARCHGYM" tasks export "$WORLD/tasks/$TASKS_NAME" --format verl --split train --set "max_turns=$MAX_TURNS" \
  --out "$DATA_DIR/train.parquet"
"$SEARCHGYM" tasks export "$WORLD/tasks/$TASKS_NAME" --format verl --split dev --set "max_turns=$MAX_TURNS" \
  --out "$DATA_DIR/val.parquet"
echo "verl data: $DATA_DIR/train.parquet $DATA_DIR/val.parquet (world $WORLD)"
