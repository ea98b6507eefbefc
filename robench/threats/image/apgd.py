"""APGD-CE / APGD-DLR (Croce & Hein 2020) via ``torchattacks.APGD``."""

from __future__ import annotations

from robench.threats.image.common import EPS, TorchattacksThreat
from robench.threats.registry import Param, register_threat


@register_threat
class APGD(TorchattacksThreat):
    name = "apgd"
    access = "gradient"
    aligned = False  # forwards shrinking subsets; APGD keeps its own best adversarial per example
    summary = "auto-PGD with step-size schedule, keeps the best iterate (torchattacks.APGD)"
    params = (
        EPS,
        # 100 iterations, as AutoAttack runs APGD (Croce & Hein 2020); fewer make a weaker attack than the reference
        Param("steps", "int", 100, "iterations (100 as in AutoAttack)", "steps", low=1, high=100000),
        Param("restarts", "int", 1, "restarts", low=1, high=1000),
        Param("norm", "choice", "linf", "threat norm", choices=("linf", "l2")),
        Param("loss", "choice", "ce", "loss", choices=("ce", "dlr")),
    )

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        return torchattacks.APGD(model, norm="Linf" if self.norm == "linf" else "L2", eps=self.eps, steps=self.steps,
                                 n_restarts=self.restarts, seed=seed, loss=self.loss)
