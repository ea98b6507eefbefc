#!/usr/bin/env bash
# Text study on SST-2 (GLUE release): the 4 variants x 3 seeds trained on all 67,349 train
# sentences (3 epochs; text Transformer width 48, depth 2, 4 heads, 2,000-word vocabulary, 32
# tokens) and evaluated on the 872 dev sentences (GLUE's test labels are not public). Threats:
# clean; textattack's PWWS and DeepWordBug recipes (real textattack, unlimited queries); word-swap
# contamination at rates 0.05, 0.1, 0.2 and 0.4. One evaluate per seed, paired against that seed's `sa`.
# Outputs in results/studies/text-sst2/: seed-K.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
OUT=results/studies/text-sst2
M=$OUT/models; mkdir -p "$M"
EPOCHS=${EPOCHS:-3}

jobs=()
for s in $SEEDS; do for v in $VARIANTS; do
  [ -f $M/sst2-$v-s$s.safetensors ] || jobs+=("$R train --task $DATA/sst2/train.tsv --eval-data $DATA/sst2/dev.tsv --variant $v --seed $s --epochs $EPOCHS --device $DEVICE --out $M/sst2-$v-s$s.safetensors --quiet")
done; done
[ ${#jobs[@]} -eq 0 ] || parallel "${jobs[@]}"

jobs=()
for s in $SEEDS; do
  jobs+=("$R evaluate $(seed_models sst2 "$s" "$M") --baseline $M/sst2-sa-s$s.safetensors --threat pwws --threat deepwordbug --threat word-swap:rate=0.05 --threat word-swap:rate=0.1 --threat word-swap:rate=0.2 --threat word-swap:rate=0.4 --device $DEVICE --seed 0 --quiet --csv $OUT/seed-$s.csv")
done
parallel "${jobs[@]}"

$R aggregate $OUT/seed-*.csv --baseline sst2-sa --csv $OUT/summary.csv --markdown $OUT/summary.md --plot $OUT/summary.png --quiet
