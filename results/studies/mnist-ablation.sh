#!/usr/bin/env bash
# What makes BSA less robust on MNIST (issue 19)? vision-mnist.sh's setting (trained on the first 8,000
# images of the MNIST test set, evaluated on its last 2,000; ViT width 64, depth 4, 4 heads, 4 x 4 grid
# of 7 x 7 patches + CLS, 15 epochs), 3 seeds, BSA with one design option changed at a time:
#   sa             softmax attention + learned absolute position embedding (vision-mnist's `sa`)
#   bsa            BSA as defined in docs/models.md (vision-mnist's `bsa`)
#   bsa-dot        range kernel (2/h_y) q.k instead of -||q-k||^2/h_y (--arch-arg bsa_range=dot)
#   bsa-nospatial  no spatial kernel, so no position information at all (bsa_spatial=false)
#   bsa-pe         BSA plus SA's learned additive position embedding (pos_embed=true)
#   bsa-fixed      h_y, h_p fixed at their initial values instead of learned (bsa_bandwidths=fixed)
#   sa-nope        the control for bsa-pe: SA without its position embedding (--variant sa
#                  --arch-arg pos_embed=false), so no position information at all
# Threats: clean, FGSM and PGD-20 (step eps/4) at eps 0.02 and 0.05 on the 2,000 images; SPSA eps 0.1
# on a seeded stratified 100-image sample (query-based, costly: it only checks that the gradient attacks
# are not masked). Each seed is paired against its `sa`.
# Outputs in results/studies/mnist-ablation/: seed-K.csv, seed-K.spsa.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
VARIANTS="sa bsa bsa-dot bsa-nospatial bsa-pe bsa-fixed sa-nope"
study mabl results/studies/mnist-ablation

variant_args() {
  case $1 in
    bsa-dot) echo "--variant bsa --arch-arg bsa_range=dot" ;;
    bsa-nospatial) echo "--variant bsa --arch-arg bsa_spatial=false" ;;
    bsa-pe) echo "--variant bsa --arch-arg pos_embed=true" ;;
    bsa-fixed) echo "--variant bsa --arch-arg bsa_bandwidths=fixed" ;;
    sa-nope) echo "--variant sa --arch-arg pos_embed=false" ;;
    *) echo "--variant $1" ;;
  esac
}
train_mnist
queue_evaluation "" --threat fgsm:eps=0.02 --threat fgsm:eps=0.05 \
  --threat pgd:eps=0.02,alpha=0.005,steps=20 --threat pgd:eps=0.05,alpha=0.0125,steps=20
queue_evaluation .spsa --threat spsa:eps=0.1 -n 100
run_evaluations
summarize
