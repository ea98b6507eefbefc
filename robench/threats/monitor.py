"""Watch every iterate an attack evaluates, so that "broken if any iterate broke it" holds.

torchattacks returns only the final iterate. :class:`IterateMonitor` wraps the model during the
attack: for attacks whose forward passes always carry the whole batch in order (FGSM, PGD,
PGD-L2), it records per example whether any evaluated iterate was misclassified and keeps the
first such input. For attacks that forward subsets or many perturbed copies (APGD, AutoAttack,
Square, SPSA), rows cannot be matched to examples: the monitor then only counts queries (the batch
mean) and the attack's own best-adversarial bookkeeping decides.

Early exit (aligned attacks): once an example is broken its outcome is settled, so the monitor
stops computing it. Each later forward runs the model on the rows not yet broken only and returns,
for broken rows, the logits cached when they broke, detached: their loss gradient is exactly zero,
so torchattacks' update (``sign(grad)`` for Linf, ``grad / (|grad| + tiny)`` for L2) leaves them
where they are, while the active rows get the gradient they would get in the full batch (the loss is
a mean over the whole batch, whose size does not change). When every row is broken the model is not
called at all. Results equal the full-batch loop's whenever a row's computation does not depend on
which other rows share its batch; to stay in the regime where the CPU kernels measured so
(``tests/test_engine.py``), at least ``MIN_ROWS`` rows are computed, padded with broken ones.

``queries`` keeps counting the attack's forward passes for every example (the schedule's cost, as
before early exit), so it does not fall when examples leave the batch.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

MIN_ROWS = 16  # smallest number of rows computed per forward while early exit shrinks the batch


class _RowScaledGrad(torch.autograd.Function):
    """Identity whose backward scales each row of the gradient by a power of two bringing its
    largest entry into [1, 2). Under fp16 autocast the mean loss's tiny per-example gradients would
    otherwise underflow in the half-precision backward. A positive per-example factor changes no
    attack here: Linf steps use the gradient's sign, L2 steps its per-example direction."""

    @staticmethod
    def forward(ctx, logits: Tensor) -> Tensor:
        return logits.view_as(logits)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        top = grad.abs().amax(-1, keepdim=True)
        scale = torch.where(top > 0, torch.exp2(-torch.floor(torch.log2(top))), torch.ones_like(top))
        return grad * scale


def _forward(model: nn.Module, inp: Tensor) -> Tensor:
    """fp32 logits; under fp16 autocast, with gradients rescaled per row (see :class:`_RowScaledGrad`)."""
    logits = model(inp).float()
    kind = inp.device.type
    if logits.requires_grad and torch.is_autocast_enabled(kind) and torch.get_autocast_dtype(kind) == torch.float16:
        logits = _RowScaledGrad.apply(logits)
    return logits


class IterateMonitor(nn.Module):
    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, aligned: bool, early_exit: bool = True) -> None:
        super().__init__()
        self.model = model
        self.y = y
        self.aligned = aligned
        self.early_exit = early_exit and aligned
        self.broken = torch.zeros_like(y, dtype=torch.bool)
        self.first_adv = x.detach().clone()
        self.first_pred = torch.full_like(y, -1)
        self.queries = torch.zeros(len(y), dtype=torch.float64, device=y.device)
        self.cache: Tensor | None = None  # (n, classes) float32 logits of broken rows, kept when they broke

    def forward(self, inp: Tensor) -> Tensor:
        n = len(self.y)
        if not (self.aligned and inp.shape[0] == n):
            self.queries += inp.shape[0] / n
            return _forward(self.model, inp)
        self.queries += 1
        if not self.early_exit or self.cache is None or not bool(self.broken.any()):
            logits = _forward(self.model, inp)
            self._observe(inp, logits, torch.arange(n, device=inp.device))
            return logits
        active = (~self.broken).nonzero().flatten()
        if len(active) == 0:  # everything broken: no model call; zero gradient reaches every row
            return self.cache + inp.flatten(1)[:, :1] * 0
        rows = self._padded(active)
        logits = _forward(self.model, inp[rows])
        logits = logits[: len(active)]
        out = torch.index_put(self.cache.clone(), (active,), logits)  # out of place: autograd reaches active rows only
        self._observe(inp, logits, active)
        return out

    def _padded(self, active: Tensor) -> Tensor:
        """``active`` followed by broken rows up to ``min(n, MIN_ROWS)`` rows."""
        want = min(len(self.y), MIN_ROWS)
        if len(active) >= want:
            return active
        filler = self.broken.nonzero().flatten()[: want - len(active)]
        return torch.cat([active, filler])

    @torch.no_grad()
    def _observe(self, inp: Tensor, logits: Tensor, rows: Tensor) -> None:
        """Record the rows (indices ``rows``, logits in that order) that this iterate breaks first."""
        if self.cache is None:
            self.cache = torch.zeros(len(self.y), logits.shape[-1], dtype=logits.dtype, device=logits.device)
        pred = logits.argmax(-1)
        new = (pred != self.y[rows]) & ~self.broken[rows]
        if bool(new.any()):
            idx = rows[new]
            self.first_adv[idx] = inp.detach()[idx].to(self.first_adv.dtype)
            self.first_pred[idx] = pred[new]
            self.cache[idx] = logits.detach()[new]
            self.broken[idx] = True
