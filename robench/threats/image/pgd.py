"""PGD (Madry et al. 2018), Linf, via ``torchattacks.PGD``; restarts keep any break."""

from __future__ import annotations

from robench.errors import RobenchError
from robench.threats.image.common import EPS, TARGET, TorchattacksThreat, set_target_mode
from robench.threats.registry import Param, register_threat


@register_threat
class PGD(TorchattacksThreat):
    name = "pgd"
    access = "gradient"
    perturbation_unit = "linf"
    summary = "projected gradient descent, Linf ball; a point is broken if any iterate of any restart broke it (torchattacks.PGD)"
    params = (
        EPS,
        # the step follows eps (eps/4, as robench's suites use): pgd:eps=0.1 steps 0.025, not a fixed 2/255
        Param("alpha", "float", EPS.default / 4, "step size (eps/4 unless given)", "pixels", low=0.0, high=1.0,
              follows="eps", divisor=4),
        Param("steps", "int", 10, "iterations", "steps", low=1, high=100000),
        Param("random_start", "bool", True, "start from a uniform point in the ball"),
        Param("restarts", "int", 1, "independent restarts", low=1, high=1000),
        TARGET,
    )

    def validate(self) -> None:
        if self.restarts > 1 and not self.random_start:
            raise RobenchError(f"{self.name}: restarts > 1 needs random_start=1 (restarts from the same point are identical)")

    def restarts_count(self) -> int:
        return self.restarts

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        atk = torchattacks.PGD(model, eps=self.eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start)
        set_target_mode(atk, self.target)
        return atk
