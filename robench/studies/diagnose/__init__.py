"""``robench diagnose``: mechanism diagnostics of robench Transformers (README "Diagnostics").

Three measures, each one long-format row per measurement (:class:`Measurement`):

* **token uniformity** per layer ``l`` (0 = the embedding ``Y_0``, ``l`` = the output of block ``l``,
  before the final LayerNorm): the mean pairwise cosine similarity of the tokens of a sequence,
  *all* tokens including CLS (padding excluded), over ordered pairs ``i != j``::

      U_l = mean_examples  1/(n(n-1)) sum_{i != j} cos(h_i, h_j)

  (a zero vector has cosine 0 with everything; sequences of fewer than 2 tokens are skipped).
* **SNR** per layer: clean inputs vs noisy ones (images: Gaussian pixel noise ``sigma``, clamped to
  [0, 1]; text: each real token replaced with probability ``rate`` by a different word of the
  vocabulary, so positions stay aligned), both seeded per example::

      SNR_l = 10 log10( sum_e ||H_l(x_e)||^2 / sum_e ||H_l(x~_e) - H_l(x_e)||^2 )   [dB]

  i.e. mean signal power over mean noise power (powers averaged over examples before the ratio,
  so one example left unchanged by the noise does not make the mean infinite); ``+inf`` when the
  noisy hidden states equal the clean ones for every example. Norms run over the valid tokens
  (CLS included) and all channels.
* **attention sensitivity** vs sequence length ``N``: the model's first attention layer alone (its
  weights, its bandwidths ``h_y, h_p`` for BSA and its slopes for ALiBi), fed ``N`` random token features (seeded, unit
  variance, model width, no CLS), perturbed by ``dx`` of relative size ``delta`` in a random
  direction::

      S(N) = ( ||A(x + dx) - A(x)|| / ||A(x)|| ) / ( ||dx|| / ||x|| )      (Frobenius norms)

  averaged over ``draws`` draws, computed in float64. BSA and ALiBi positions: ``0..N-1`` on a line for text;
  for images the most square ``r x c`` grid with ``r c = N`` (``r`` the largest divisor of ``N`` not
  above ``sqrt(N)``: 64 -> 8x8, 128 -> 8x16; a prime ``N`` is a 1 x N line).

Language models (``lm`` checkpoints): the examples are windows of the evaluation token file (the
stream cut into consecutive non-overlapping windows of the model's context, a seeded sample of
``n`` of them), the noise replaces tokens (``<unk>``/``<eos>`` neither replaced nor drawn), and the
attention layer of the sensitivity measure runs with its causal mask on positions ``0..N-1``.

The package: :mod:`~robench.studies.diagnose.metrics` (the measures on tensors and attention
layers), :mod:`~robench.studies.diagnose.noise` (the SNR noise), :mod:`~robench.studies.diagnose.hidden`
(hidden states of a loaded model), :mod:`~robench.studies.diagnose.data` (the examples) and
:mod:`~robench.studies.diagnose.run` (arguments, rows, the run); the plot is
:func:`robench.report.plots.plot_diagnostics`.
"""

from robench.studies.diagnose.run import DiagnoseArgs, DiagnoseResult, Measurement, diagnose

__all__ = ["DiagnoseArgs", "DiagnoseResult", "Measurement", "diagnose"]
