#!/usr/bin/env bash
# Vision study on MNIST: the 4 variants x 3 seeds, trained on the first 8,000 images of the MNIST
# *test* set and evaluated on its last 2,000 (the MNIST training images are not available here;
# the last 5,000 test images are the harder NIST half, so these accuracies are not comparable with
# the usual MNIST test accuracy). ViT: 28 x 28 images, 7 x 7 patches (a 4 x 4 grid + CLS), width 64,
# depth 4, 4 heads, 15 epochs. Threats: clean, FGSM and PGD-20 (step eps/4) at eps 0.02, 0.05
# and 0.1 (pixels in [0, 1]), SPSA at eps 0.1 on a seeded stratified 500-image sample (query-based,
# costly), and the 15 corruptions x 5 severities. One evaluate per seed, paired against that
# seed's `sa`. Outputs in results/studies/vision-mnist/: seed-K.csv and seed-K.spsa.csv (rows),
# summary.{csv,md,png} (robench aggregate).
source "$(dirname "$0")/lib.sh"
study mnist results/studies/vision-mnist

train_mnist
queue_evaluation "" --threat fgsm:eps=0.02 --threat fgsm:eps=0.05 --threat fgsm:eps=0.1 \
  --threat pgd:eps=0.02,alpha=0.005,steps=20 --threat pgd:eps=0.05,alpha=0.0125,steps=20 \
  --threat pgd:eps=0.1,alpha=0.025,steps=20 --threat corruption:name=all
queue_evaluation .spsa --threat spsa:eps=0.1 -n 500
run_evaluations
summarize
