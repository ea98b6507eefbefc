"""PGD in the L2 ball via ``torchattacks.PGDL2``; restarts keep any break (as :mod:`.pgd`)."""

from __future__ import annotations

from robench.threats.image.common import set_target_mode
from robench.threats.image.pgd import PGD
from robench.threats.registry import Param, register_threat


@register_threat
class PGDL2(PGD):
    name = "pgd-l2"
    perturbation_unit = "l2"
    summary = "projected gradient descent, L2 ball (torchattacks.PGDL2)"
    params = (
        Param("eps", "float", 0.5, "L2 radius in [0,1] pixel space", "pixels (L2)", low=0.0, high=1e6),
        Param("alpha", "float", 0.5 / 4, "step size (eps/4 unless given)", "pixels (L2)", low=0.0, high=1e6,
              follows="eps", divisor=4),
        *PGD.params[2:],  # steps, random_start, restarts, target
    )

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        atk = torchattacks.PGDL2(model, eps=self.eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start)
        set_target_mode(atk, self.target)
        return atk
