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

# seed_models PREFIX SEED DIR: the checkpoint paths of the VARIANTS of one seed.
seed_models() {
  local v out=()
  for v in $VARIANTS; do out+=("$3/$1-$v-s$2.safetensors"); done
  echo "${out[@]}"
}

# A study: `study PREFIX OUT` names its models PREFIX-VARIANT-sSEED and writes to OUT. Checkpoints go
# to OUT/models/ (not committed; their sha256 is in every CSV row). Training is skipped for a
# checkpoint that exists, so an interrupted study resumes; delete models/ to retrain from scratch
# (CPU training is deterministic: the same sha256 comes back).
study() {
  PREFIX=$1 OUT=$2 M=$2/models EVALS=()
  mkdir -p "$M"
}

# variant_args NAME: the `robench train` arguments of one entry of VARIANTS: `--variant NAME` here; an
# ablation study redefines it after sourcing this file to map its scheme names to variant + --arch-arg.
variant_args() {
  echo "--variant $1"
}

# train_variants "DATA_ARGS" [ARGS]: `robench train DATA_ARGS $(variant_args V) --seed S ARGS` for every
# variant and seed whose checkpoint is missing (the card records the command in that order).
train_variants() {
  local data=$1 s v out jobs=()
  shift
  for s in $SEEDS; do for v in $VARIANTS; do
    out=$M/$PREFIX-$v-s$s.safetensors
    [ -f "$out" ] || jobs+=("$R train $data $(variant_args "$v") --seed $s $* --device $DEVICE --out $out --quiet")
  done; done
  parallel "${jobs[@]}"
}

# train_mnist: train_variants in vision-mnist.sh's setting (the first 8,000 MNIST test images to train,
# the last 2,000 to test, 15 epochs), which the MNIST ablation and sensitivity studies share: their
# `sa`/`bsa`/`grc` checkpoints are vision-mnist's, bit for bit (evaluations read the test slice off the cards).
train_mnist() {
  local src=$DATA/mnist/t10k-images-idx3-ubyte.gz
  train_variants "--task '$src[:8000]' --eval-data '$src[8000:]'" --epochs "${EPOCHS:-15}"
}

# queue_evaluation SUFFIX ARGS: per seed, `robench evaluate ARGS` on its models paired against its
# `sa`, into OUT/seed-SEED{SUFFIX}.csv (attacks seeded 0); run_evaluations runs the queue.
queue_evaluation() {
  local suffix=$1 s
  shift
  for s in $SEEDS; do
    EVALS+=("$R evaluate $(seed_models "$PREFIX" "$s" "$M") --baseline $M/$PREFIX-sa-s$s.safetensors $* --device $DEVICE --seed 0 --quiet --csv $OUT/seed-$s$suffix.csv")
  done
}
run_evaluations() {
  parallel "${EVALS[@]}"
}

# summarize: robench aggregate over every seed file, against PREFIX-sa -> OUT/summary.{csv,md,png}.
summarize() {
  $R aggregate "$OUT"/seed-*.csv --baseline "$PREFIX-sa" --csv "$OUT/summary.csv" --markdown "$OUT/summary.md" \
    --plot "$OUT/summary.png" --quiet
}
