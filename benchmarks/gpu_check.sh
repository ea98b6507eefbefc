#!/usr/bin/env bash
# The prepared device check (benchmarks/gpu_check.py): the zoo, a streamed timm ViT-tiny 224 px
# evaluation in fp32 and bf16, BSA's fast path against the literal formula; prints a table.
#   bash benchmarks/gpu_check.sh                 # on a CUDA machine, under 5 minutes on one GPU
#   bash benchmarks/gpu_check.sh --device cpu    # the same logic, small sizes (CI runs this)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || { bash scripts/setup.sh && PY=.venv/bin/python; }
exec "$PY" benchmarks/gpu_check.py "$@"
