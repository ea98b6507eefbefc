#!/usr/bin/env bash
# Rebuild the zoo: 4 variants x 2 tasks with `robench train` (seed 0, the per-task defaults of
# robench/train.py). Bit-identical on the same machine and thread count; each card records its command.
# --threads 2: the zoo was trained with two CPU threads (torch's default on the 2-core machine then).
set -euo pipefail
cd "$(dirname "$0")/.."
for v in sa bsa grc bsa-grc; do
    .venv/bin/robench train --task digits --variant "$v" --seed 0 --threads 2 --out "models/digits-vit-$v.safetensors"
    .venv/bin/robench train --task wordnet-topics --variant "$v" --seed 0 --threads 2 --out "models/wordnet-text-$v.safetensors"
done
