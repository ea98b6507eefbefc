#!/usr/bin/env bash
# Sensitivity of BSA and GRC to their initial values (issue 19), in vision-mnist.sh's setting (trained on
# the first 8,000 MNIST test images, evaluated on the last 2,000; ViT width 64, depth 4, 4 heads, so
# d_head = 16; a 4 x 4 patch grid + CLS; 15 epochs), 3 seeds:
#   sa, bsa, grc        the defaults: BSA h_y = 2 sqrt(d_head) = 8 and h_p = the mean squared patch
#                       distance = 5 at init, both learned; GRC t = 0.1 at init, learned per layer
#   bsa-hy2, bsa-hy32   h_y initialised 4x smaller / larger (--arch-arg bsa_hy_init=...), still learned
#   bsa-hp1.25, bsa-hp20  h_p initialised 4x smaller / larger (bsa_hp_init=...), still learned
#   grc-t0.5            GRC with t = 0.5 at init, learned
#   grc-fixed0.1, grc-fixed0.5  GRC with t fixed at 0.1 / 0.5 (grc_t=fixed)
# Threats: clean and PGD-20 (step eps/4) at eps 0.02 and 0.05 on the 2,000 images; each seed paired
# against its `sa`. Outputs in results/studies/mnist-sensitivity/: seed-K.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
VARIANTS="sa bsa bsa-hy2 bsa-hy32 bsa-hp1.25 bsa-hp20 grc grc-t0.5 grc-fixed0.1 grc-fixed0.5"
study msens results/studies/mnist-sensitivity

variant_args() {
  case $1 in
    bsa-hy*) echo "--variant bsa --arch-arg bsa_hy_init=${1#bsa-hy}" ;;
    bsa-hp*) echo "--variant bsa --arch-arg bsa_hp_init=${1#bsa-hp}" ;;
    grc-t*) echo "--variant grc --arch-arg grc_init=${1#grc-t}" ;;
    grc-fixed*) echo "--variant grc --arch-arg grc_t=fixed --arch-arg grc_init=${1#grc-fixed}" ;;
    *) echo "--variant $1" ;;
  esac
}
train_mnist
queue_evaluation "" --threat pgd:eps=0.02,alpha=0.005,steps=20 --threat pgd:eps=0.05,alpha=0.0125,steps=20
run_evaluations
summarize
