#!/usr/bin/env bash
# Kernel ablation on synthetic denoising (issue 19): one attention layer over the samples of seeded
# piecewise-smooth signals (1-D length 256, 2-D 32x32, in [0, 1]) plus Gaussian noise sigma 0.05,
# 0.1, 0.2, 0.3: SA's and BSA's kernels with identity projections (q = k = v = x, the paper's
# Theorem III.1) and learned (300 Adam steps), beside the bilateral filter and non-local means, every
# parameter chosen on 16 training signals per seed, the error measured on 8 held-out test signals
# (robench/studies/denoise/). CPU, fp64, one thread: about 5 CPU-minutes; DEVICE is not used.
# Outputs in results/studies/denoise/: results.csv (one row per signal kind, sigma, method, seed)
# and summary.md (PSNR mean ± sd over the seeds).
source "$(dirname "$0")/lib.sh"
PY=${PY:-.venv/bin/python}
$PY -m robench.studies.denoise --out results/studies/denoise --seeds "${SEEDS// /,}"
