#!/usr/bin/env bash
# Install headless Chromium from Debian for the viewer's browser tests (tests/test_view_browser.py); idempotent.
# The tests drive it with the `playwright` package from PyPI (executable /usr/bin/chromium): never `playwright install`.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  echo "chromium already installed: $(command -v chromium)"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
echo "installed $(command -v chromium)"
