#!/usr/bin/env bash
# Text study on SST-2 (GLUE release): the 4 variants x 3 seeds trained on all 67,349 train
# sentences (3 epochs; text Transformer width 48, depth 2, 4 heads, 2,000-word vocabulary, 32
# tokens) and evaluated on the 872 dev sentences (GLUE's test labels are not public). Threats:
# clean; textattack's PWWS and DeepWordBug recipes (real textattack, unlimited queries); word-swap
# contamination at rates 0.05, 0.1, 0.2 and 0.4. One evaluate per seed, paired against that seed's `sa`.
# Outputs in results/studies/text-sst2/: seed-K.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
study sst2 results/studies/text-sst2

train_variants "--task $DATA/sst2/train.tsv --eval-data $DATA/sst2/dev.tsv" --epochs "${EPOCHS:-3}"
queue_evaluation "" --threat pwws --threat deepwordbug --threat word-swap:rate=0.05 --threat word-swap:rate=0.1 \
  --threat word-swap:rate=0.2 --threat word-swap:rate=0.4
run_evaluations
summarize
