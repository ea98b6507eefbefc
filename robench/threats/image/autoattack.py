"""AutoAttack, standard version (Croce & Hein 2020), via ``torchattacks.AutoAttack``."""

from __future__ import annotations

from robench.threats.image.common import EPS, TorchattacksThreat
from robench.threats.registry import Param, register_threat


@register_threat
class AutoAttack(TorchattacksThreat):
    name = "autoattack"
    access = "ensemble"
    aligned = False
    summary = "APGD-CE, APGD-T, FAB-T, Square (standard); n_classes from the model card (torchattacks.AutoAttack)"
    params = (EPS, Param("norm", "choice", "linf", "threat norm", choices=("linf", "l2")))

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        return torchattacks.AutoAttack(model, norm="Linf" if self.norm == "linf" else "L2", eps=self.eps,
                                       version="standard", n_classes=num_classes, seed=seed)
