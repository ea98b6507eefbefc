#!/usr/bin/env bash
# Mechanism diagnostics of the trained study models (run after vision-mnist.sh, vision-digits.sh,
# text-sst2.sh and lm-wikitext2.sh): per layer, token uniformity (mean pairwise cosine of the token
# representations) and the SNR of clean vs noisy inputs propagated through the network (pixel
# Gaussian noise sigma 0.1 / 10% token replacement), on a seeded 256-example sample of each test
# set (for the language models: 256 context windows of wiki.test); and the first attention layer's
# relative sensitivity to a small input perturbation as the sequence length N grows (64 ... 2048
# random tokens; causal for the language models).
# Outputs in results/studies/diagnostics/: STUDY.{csv,png} (long format: model, diagnostic, layer,
# n_tokens, value, unit).
source "$(dirname "$0")/lib.sh"
OUT=results/studies/diagnostics; mkdir -p "$OUT"
jobs=()
for study in vision-mnist:mnist vision-digits:digits text-sst2:sst2 lm-wikitext2:wt2; do
  dir=${study%%:*} prefix=${study##*:} models=()
  for s in $SEEDS; do models+=($(seed_models "$prefix" "$s" "results/studies/$dir/models")); done
  jobs+=("$R diagnose ${models[*]} -n 256 --device $DEVICE --seed 0 --csv $OUT/$prefix.csv --plot $OUT/$prefix.png > $OUT/$prefix.txt")
done
parallel "${jobs[@]}"

for prefix in mnist digits sst2 wt2; do
  $R aggregate $OUT/$prefix.csv --csv $OUT/$prefix-summary.csv --markdown $OUT/$prefix-summary.md --quiet
done
