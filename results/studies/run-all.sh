#!/usr/bin/env bash
# Runs every study in results/studies/ in order (about 130 minutes on 2 CPU cores; see README.md).
set -euo pipefail
here=$(dirname "$0")
for study in vision-mnist vision-digits text-sst2 lm-wikitext2 lm-ablation diagnostics denoise \
    mnist-ablation mnist-sensitivity longrange; do
  echo "== $study ($(date +%T))" >&2
  bash "$here/$study.sh"
done
