#!/usr/bin/env bash
# Command 1: set up, then open the tutorial notebooks in JupyterLab on the bundled teaching model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ROOT_FLAG=""
[ "$(id -u)" = "0" ] && ROOT_FLAG="--allow-root"
exec .venv/bin/jupyter lab $ROOT_FLAG --notebook-dir=notebooks notebooks/00_quickstart.ipynb "$@"
