"""Watch every iterate an attack evaluates, so that "broken if any iterate broke it" holds.

torchattacks returns only the final iterate. :class:`IterateMonitor` wraps the model during the
attack: for attacks whose forward passes always carry the whole batch in order (FGSM, PGD,
PGD-L2), it records per example whether any evaluated iterate was misclassified and keeps the
first such input. For attacks that forward subsets or many perturbed copies (APGD, AutoAttack,
Square, SPSA), rows cannot be matched to examples: the monitor then only counts queries (the batch
mean) and the attack's own best-adversarial bookkeeping decides.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class IterateMonitor(nn.Module):
    def __init__(self, model: nn.Module, x: Tensor, y: Tensor, aligned: bool) -> None:
        super().__init__()
        self.model = model
        self.y = y
        self.aligned = aligned
        self.broken = torch.zeros_like(y, dtype=torch.bool)
        self.first_adv = x.detach().clone()
        self.first_pred = torch.full_like(y, -1)
        self.queries = torch.zeros(len(y), dtype=torch.float64, device=y.device)

    def forward(self, inp: Tensor) -> Tensor:
        logits = self.model(inp)
        n = len(self.y)
        if self.aligned and inp.shape[0] == n:
            with torch.no_grad():
                pred = logits.argmax(-1)
                new = (pred != self.y) & ~self.broken
                if new.any():
                    self.first_adv[new] = inp.detach()[new].to(self.first_adv.dtype)
                    self.first_pred[new] = pred[new]
                    self.broken |= new
            self.queries += 1
        else:
            self.queries += inp.shape[0] / n
        return logits
