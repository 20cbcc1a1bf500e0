#!/usr/bin/env bash
# Create ./.venv and install biogliner with everything the tests need.
# The CPU build of torch is installed first and pinned: a bare "torch" requirement pulls CUDA.
# On a GPU machine, install the CUDA torch of your choice into .venv before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
echo "biogliner installed in $(pwd)/.venv"
