#!/usr/bin/env bash
# Long-context stability (issue 19): SA (learned absolute position embedding), SA + ALiBi, SA + RoPE and
# BSA on a seeded long-range retrieval task (robench/studies/longrange.py): N words, N - 1 of them filler
# drawn from 1,000 filler words and one needle (alpha, bravo, charlie or delta) at a uniform position; the
# label is the needle. Every model is trained once, on 4,000 examples of length 256 (20 epochs, text
# Transformer width 16, depth 1, 2 heads, lr 0.005, max length 2,048, so that one model reads every
# length), and tested on 500 fresh examples at N = 256, 512, 1,024 and 2,048 (train short, test long:
# training at N = 2,048 costs ~8x more per epoch, beyond this CPU budget). Threats per length: clean,
# word-swap at rate 0.02 (random vocabulary words; one may be a needle: 0.16 extra needles per example
# expected at N = 2,048, which is why the rate is low), typo at rates 0.02 and 0.1 (a word becomes
# [UNK]; never adds a needle). 3 seeds; each seed's models paired against its `sa`. Outputs in
# results/studies/longrange/: seed-K.nNNNN.csv (rows; N zero-padded so that the files, and the summary's
# tables, sort by length), summary.{csv,md,png}; the generated tables go to longrange/data/ (not committed).
source "$(dirname "$0")/lib.sh"
PY=${PY:-.venv/bin/python}
VARIANTS="sa alibi rope bsa"
LENGTHS=${LENGTHS:-256 512 1024 2048}
study lr results/studies/longrange
D=$OUT/data
[ -f "$D/train-256.tsv" ] || $PY -m robench.studies.longrange --length 256 --examples 4000 --seed 0 --out "$D/train-256.tsv"
for n in $LENGTHS; do
  [ -f "$D/test-$n.tsv" ] || $PY -m robench.studies.longrange --length "$n" --examples 500 --seed 1 --out "$D/test-$n.tsv"
done

train_variants "--task $D/train-256.tsv --eval-data $D/test-256.tsv --max-length 2048 --vocab-size 1010 --embed-dim 16 --depth 1 --heads 2 --lr 0.005" \
  --epochs "${EPOCHS:-20}"
for n in $LENGTHS; do
  queue_evaluation ".n$(printf %04d "$n")" --dataset "$D/test-$n.tsv" --threat word-swap:rate=0.02 --threat typo:rate=0.02 --threat typo:rate=0.1
done
run_evaluations
summarize
