"""PGD in the L2 ball via ``torchattacks.PGDL2``; restarts keep any break."""

from __future__ import annotations

from robench.errors import RobenchError
from robench.threats.image.common import TARGET, TorchattacksThreat, set_target_mode
from robench.threats.registry import Param, register_threat


@register_threat
class PGDL2(TorchattacksThreat):
    name = "pgd-l2"
    norm = "l2"
    summary = "projected gradient descent, L2 ball (torchattacks.PGDL2)"
    params = (
        Param("eps", "float", 0.5, "L2 radius in [0,1] pixel space", "pixels (L2)", low=0.0, high=1e6),
        Param("alpha", "float", 0.1, "step size", "pixels (L2)", low=0.0, high=1e6),
        Param("steps", "int", 10, "iterations", "steps", low=1, high=100000),
        Param("random_start", "bool", True, "start from a random point in the ball"),
        Param("restarts", "int", 1, "independent restarts", low=1, high=1000),
        TARGET,
    )

    def validate(self) -> None:
        if self.restarts > 1 and not self.random_start:
            raise RobenchError("pgd-l2: restarts > 1 needs random_start=1")

    def restarts_count(self) -> int:
        return self.restarts

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        atk = torchattacks.PGDL2(model, eps=self.eps, alpha=self.alpha, steps=self.steps, random_start=self.random_start)
        set_target_mode(atk, self.target)
        return atk
