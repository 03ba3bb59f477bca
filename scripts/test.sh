#!/usr/bin/env bash
# Command 2: set up (venv, Debian chromium, the JS toolchain), then run the whole test suite:
# unit tests, browser tests (JupyterLab + Chromium) and the tutorial notebooks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

if ! command -v chromium >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = "0" ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
npm ci --prefix js --no-audit --no-fund --loglevel=error

status=0
.venv/bin/python -m pytest tests -q -ra -p no:cacheprovider "$@" || status=$?
if [ "$status" = "5" ]; then
  echo "pytest collected no tests: treating as failure" >&2
  exit 1
fi
exit "$status"
