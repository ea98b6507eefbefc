"""Square attack (Andriushchenko et al. 2020), query-based, via ``torchattacks.Square``."""

from __future__ import annotations

from robench.threats.image.common import EPS, TorchattacksThreat
from robench.threats.registry import Param, register_threat


@register_threat
class Square(TorchattacksThreat):
    name = "square"
    access = "query"
    aligned = False
    summary = "random-search square attack, score-based (torchattacks.Square)"
    params = (
        EPS,
        Param("queries", "int", 1000, "query budget per example", "queries", low=1, high=10**7),
        Param("p_init", "float", 0.8, "initial fraction of pixels changed", low=0.0, high=1.0),
        Param("restarts", "int", 1, "restarts", low=1, high=1000),
        Param("norm", "choice", "linf", "threat norm", choices=("linf", "l2")),
    )

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        return torchattacks.Square(model, norm="Linf" if self.norm == "linf" else "L2", eps=self.eps,
                                   n_queries=self.queries, n_restarts=self.restarts, p_init=self.p_init, seed=seed)
