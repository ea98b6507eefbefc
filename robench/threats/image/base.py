"""Image threats: attack a batch of images in [0, 1] pixel space; the perturbation is measured in pixels."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from robench.threats.base import Outcome, Threat, ThreatBatch

if TYPE_CHECKING:  # torch is imported where threats compute, so listing them (`robench threats`) stays fast
    from torch import Tensor


class ImageThreat(Threat):
    """Base class of image threats: every outcome carries Linf, L2 and the size in the threat's own unit."""

    modality = "image"

    def measure(self, batch: ThreatBatch, outcome: Outcome) -> Outcome:
        sizes = perturbation_norms(outcome.adv, batch.inputs)
        unit = sizes.get(self.perturbation_unit, sizes["linf"])  # a threat without a pixel unit reports Linf
        return replace(outcome, adv=outcome.adv.detach(), perturbation=unit, linf=sizes["linf"], l2=sizes["l2"])


def perturbation_norms(adv: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-example sizes of ``adv - x``: Linf, L2 and mean absolute change."""
    import torch

    d = (adv - x).flatten(1).to(torch.float64)
    return {"linf": d.abs().amax(1), "l2": d.norm(dim=1), "mean_abs": d.abs().mean(1)}
