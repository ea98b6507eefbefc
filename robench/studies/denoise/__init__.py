"""Kernel ablation on synthetic denoising (issue 19): one SA or BSA attention layer over the samples of
piecewise-smooth 1-D and 2-D signals, with identity or learned projections, beside the bilateral
filter and non-local means. :mod:`.signals` makes the signals, :mod:`.filters` the references,
:mod:`.layer` the attention denoisers, :mod:`.study` the runs, :mod:`.report` the files;
``python -m robench.studies.denoise`` runs it (``results/studies/denoise.sh``).
"""
