#!/usr/bin/env bash
# Install SearchGym into .venv and run the CPU demo (the README's main command).
# Extra arguments go to `searchgym demo` (e.g. --out runs/demo2).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned in the same install so pip takes the local CPU wheel, not a CUDA build.
.venv/bin/pip install -q "torch==2.13.0" -e .
.venv/bin/searchgym demo "$@"
