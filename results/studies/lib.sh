# Shared by the study scripts in results/studies/ (sourced, not run).
#
# Every script runs from the repository root, trains with `robench train` and evaluates with
# `robench evaluate`; the knobs below are environment variables so that the same scripts scale up
# (e.g. `DEVICE=cuda JOBS=1 EPOCHS=100 bash results/studies/vision-mnist.sh`).
#   DATA     the shared datasets folder (default ../shared/data)
#   DEVICE   cpu (bit-reproducible; the published files) or cuda
#   JOBS     training/evaluation processes run side by side (default 2: one per core here). On CPU
#            each process uses one thread (OMP_NUM_THREADS=1), so results do not depend on JOBS.
#   SEEDS    training seeds (default "0 1 2"); attacks use --seed 0 throughout
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
R=${R:-.venv/bin/robench}
DATA=${DATA:-../shared/data}
DEVICE=${DEVICE:-cpu}
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-0 1 2}
VARIANTS="sa bsa grc bsa-grc"
if [ "$DEVICE" = cpu ]; then export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1; fi
export R DATA DEVICE

# parallel CMD...: run the given command lines (one per argument) JOBS at a time; fail if any fails.
parallel() {
  [ $# -gt 0 ] || return 0
  printf '%s\0' "$@" | xargs -0 -P "$JOBS" -I{} bash -c '{}'
}

# seed_models PREFIX SEED DIR: the checkpoint paths of the four variants of one seed.
seed_models() {
  local v out=()
  for v in $VARIANTS; do out+=("$3/$1-$v-s$2.safetensors"); done
  echo "${out[@]}"
}
# Checkpoints go to results/studies/STUDY/models/ (not committed; their sha256 is in every CSV row).
# Training is skipped for a checkpoint that exists, so an interrupted study resumes; delete
# models/ to retrain from scratch (CPU training is deterministic: the same sha256 comes back).
