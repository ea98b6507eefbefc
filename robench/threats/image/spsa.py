"""SPSA (Uesato et al. 2018), gradient-free, Linf, via ``torchattacks.SPSA``."""

from __future__ import annotations

from robench.threats.image.common import EPS, TorchattacksThreat
from robench.threats.registry import Param, register_threat


@register_threat
class SPSA(TorchattacksThreat):
    name = "spsa"
    access = "query"
    perturbation_unit = "linf"
    aligned = False  # forwards many perturbed copies per example
    summary = "simultaneous perturbation stochastic approximation: gradient-free, Linf (torchattacks.SPSA)"
    params = (
        EPS,
        Param("delta", "float", 0.01, "finite-difference step", "pixels", low=0.0, high=1.0),
        Param("lr", "float", 0.01, "Adam learning rate", low=0.0, high=10.0),
        Param("iters", "int", 10, "iterations", "steps", low=1, high=100000),
        Param("samples", "int", 64, "perturbation samples per iteration", low=1, high=100000),
        Param("max_batch", "int", 256, "max forward batch inside the attack", low=1, high=1000000),
    )

    def make_attack(self, model, num_classes, seed):
        import torchattacks

        return torchattacks.SPSA(model, eps=self.eps, delta=self.delta, lr=self.lr, nb_iter=self.iters,
                                 nb_sample=self.samples, max_batch_size=self.max_batch)
