#!/usr/bin/env bash
# What makes BSA win at language modelling (issue 19)? The WikiText-2 setting of lm-wikitext2.sh
# (trained on wiki.valid.tokens for 2 epochs, evaluated on wiki.test.tokens, context 64, width 64,
# depth 2, 4 heads, 5,000 words), 3 seeds, with five position/kernel schemes:
#   sa             softmax attention + learned absolute position embedding (lm-wikitext2's `sa`)
#   alibi          softmax attention + ALiBi's linear distance penalty (causal), no position embedding
#   rope           softmax attention + rotary embeddings on q/k, no position embedding
#   bsa            BSA: Gaussian range kernel x Gaussian spatial kernel, no position embedding
#   bsa-nospatial  BSA's range kernel alone (--arch-arg bsa_spatial=false): no position information at all
# Each seed is paired against its `sa` (perplexity difference, window-clustered test on the same
# stream). Outputs in results/studies/lm-ablation/: seed-K.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
VARIANTS="sa alibi rope bsa bsa-nospatial"
study wt2abl results/studies/lm-ablation

# variant_args NAME: the robench train arguments of one scheme.
variant_args() {
  case $1 in
    bsa-nospatial) echo "--variant bsa --arch-arg bsa_spatial=false" ;;
    *) echo "--variant $1" ;;
  esac
}
train_variants "--task lm --data $DATA/wikitext2/wiki.valid.tokens --eval-data $DATA/wikitext2/wiki.test.tokens" \
  --epochs "${EPOCHS:-2}"
queue_evaluation "" --threat word-swap:rate=0.1 --threat word-swap:rate=0.4
run_evaluations
summarize
