#!/usr/bin/env bash
# Vision study on digits (scikit-learn's 8 x 8 handwritten digits, embedded): the 4 variants x 3
# seeds with `robench train --task digits` at the zoo's settings. CPU training is bit-reproducible
# for a given thread count: these run one thread per process, so seed 0 differs from the zoo's
# checkpoints, which were trained with torch's default 2 threads here (and are reproduced with
# them). Threats: the default suite's FGSM, PGD-10 and SPSA at eps 0.1 plus PGD-20 at 0.05, and
# the 15 corruptions x 5 severities, on all 359 test images; one evaluate per seed, paired against
# that seed's `sa`.
# Outputs in results/studies/vision-digits/: seed-K.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
study digits results/studies/vision-digits

train_variants "--task digits"
queue_evaluation "" --threat fgsm:eps=0.1 --threat pgd:eps=0.05,alpha=0.0125,steps=20 \
  --threat pgd:eps=0.1,alpha=0.025,steps=10 --threat spsa:eps=0.1 --threat corruption:name=all
run_evaluations
summarize
