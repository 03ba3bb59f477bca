#!/usr/bin/env bash
# Create .venv and install interpwidgets with its dev extras. Torch is installed first so that the
# CPU wheel is used; override with TORCH_SPEC (e.g. TORCH_SPEC="torch==2.13.0+cu128 --index-url ...").
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# shellcheck disable=SC2086
.venv/bin/python -m pip install --quiet $TORCH_SPEC
.venv/bin/python -m pip install --quiet -e ".[dev]"
echo "interpwidgets installed in .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
