#!/usr/bin/env bash
# Language-modelling study on WikiText-2: the 4 causal variants x 3 seeds, trained on
# wiki.valid.tokens (217,646 tokens; the WikiText-2 train file is not available here) for 2
# epochs and evaluated on wiki.test.tokens (245,569 tokens): sliding-window perplexity (context 64,
# stride 32), clean and under word-swap contamination of the evaluation stream at rates 0.05, 0.1,
# 0.2 and 0.4 (each word replaced, with that probability, by a random vocabulary word; line-seeded).
# Model: width 64, depth 2, 4 heads, tied embeddings, 5,000-word vocabulary. Each seed is paired
# against its `sa`: perplexity difference and a paired window-clustered test on the same stream.
# Outputs in results/studies/lm-wikitext2/: seed-K.csv, summary.{csv,md,png}.
source "$(dirname "$0")/lib.sh"
study wt2 results/studies/lm-wikitext2

train_variants "--task lm --data $DATA/wikitext2/wiki.valid.tokens --eval-data $DATA/wikitext2/wiki.test.tokens" \
  --epochs "${EPOCHS:-2}"
queue_evaluation "" --threat word-swap:rate=0.05 --threat word-swap:rate=0.1 --threat word-swap:rate=0.2 \
  --threat word-swap:rate=0.4
run_evaluations
summarize
