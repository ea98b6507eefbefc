#!/usr/bin/env bash
# Regenerates every file in results/ (CPU, seed 0). Each block is the exact command behind a file.
set -euo pipefail
cd "$(dirname "$0")/.."
R=.venv/bin/robench

# default.{csv,md}: the default suite on the whole zoo (what `robench evaluate` prints)
$R evaluate --device cpu --seed 0 --quiet --csv results/default.csv --markdown results/default.md

# default-paired.{csv,md}: the default suite on the digits zoo, paired against digits-vit-sa
$R evaluate digits-vit-sa digits-vit-bsa digits-vit-grc digits-vit-bsa-grc --baseline digits-vit-sa \
    --device cpu --seed 0 --quiet --csv results/default-paired.csv --markdown results/default-paired.md

# text-paired.{csv,md}: the default suite on the text zoo, paired against wordnet-text-sa
$R evaluate wordnet-text-sa wordnet-text-bsa wordnet-text-grc wordnet-text-bsa-grc --baseline wordnet-text-sa \
    --device cpu --seed 0 --quiet --csv results/text-paired.csv --markdown results/text-paired.md

# paper-gradient.{csv,md}: the FGSM and PGD part of attacks/paper.toml on the digits zoo, with
# digits-vit-sa as the baseline (paired difference + exact McNemar p). SPSA is left out here: at
# robench's SPSA defaults it costs ~40 CPU-minutes for the 4 models x 6 eps.
threats=()
for k in 1 2 3 4 5 6; do threats+=(--threat "fgsm:eps=$k/255"); done
for k in 1 2 3 4 5 6; do threats+=(--threat "pgd:eps=$k/255,alpha=$((3 * k))/5100,steps=20,random_start=1"); done  # alpha = 0.15 eps
$R evaluate digits-vit-sa digits-vit-bsa digits-vit-grc digits-vit-bsa-grc --baseline digits-vit-sa \
    --device cpu --seed 0 --quiet "${threats[@]}" --csv results/paper-gradient.csv --markdown results/paper-gradient.md
$R leaderboard results/paper-gradient.csv > results/paper-gradient.txt

# corruptions.{csv,md,png}: the 15 corruptions x severities 1-5 (mean) on the digits zoo, mCE vs digits-vit-sa
$R evaluate digits-vit-sa digits-vit-bsa digits-vit-grc digits-vit-bsa-grc --baseline digits-vit-sa \
    --threat corruption:name=all --device cpu --seed 0 --quiet \
    --csv results/corruptions.csv --markdown results/corruptions.md --plot results/corruptions.png

# curve-pgd.{csv,png} + curve-pgd-auc.csv: PGD-10 (step 1/100) accuracy along eps on the digits zoo
$R curve digits-vit-sa digits-vit-bsa digits-vit-grc digits-vit-bsa-grc --threat pgd:alpha=1/100 \
    --sweep eps=0,1/255,2/255,4/255,8/255,16/255,32/255 --device cpu --seed 0 --quiet \
    --csv results/curve-pgd.csv --auc-csv results/curve-pgd-auc.csv --plot results/curve-pgd.png
$R leaderboard results/default.csv > results/default.txt
$R leaderboard results/default-paired.csv > results/default-paired.txt
$R leaderboard results/text-paired.csv > results/text-paired.txt
