"""FGSM (Goodfellow et al. 2015), Linf, via ``torchattacks.FGSM``."""

from __future__ import annotations

from robench.threats.image.common import EPS, TARGET, TorchattacksThreat, set_target_mode
from robench.threats.registry import register_threat


@register_threat
class FGSM(TorchattacksThreat):
    name = "fgsm"
    access = "gradient"
    perturbation_unit = "linf"
    summary = "fast gradient sign method, one step of size eps (torchattacks.FGSM)"
    params = (EPS, TARGET)

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        atk = torchattacks.FGSM(model, eps=self.eps)
        set_target_mode(atk, self.target)
        return atk
