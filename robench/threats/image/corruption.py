"""``corruption:name=NAME,severity=S``: the ImageNet-C corruptions as a threat (no adversary).

``name=all`` runs all 15 corruptions at severities 1-5 and reports the mean accuracy over the 75;
with ``--baseline MODEL`` the row also carries the mCE relative to that baseline (not AlexNet).
"""

from __future__ import annotations

from robench.errors import RobenchError
from robench.threats.base import Outcome, Threat
from robench.threats.image.base import ImageThreat
from robench.threats.image.corruption_names import APPROXIMATE, CORRUPTIONS
from robench.threats.registry import Param, register_threat

SEVERITIES = (1, 2, 3, 4, 5)


@register_threat
class Corruption(ImageThreat):
    name = "corruption"
    perturbation_unit = "mean_abs"  # mean absolute pixel change
    always_show = ("name",)
    summary = (
        "ImageNet-C corruptions with CIFAR-10-C parameters, batched and seeded per example; name=all: mean over "
        "15 x severities 1-5. Approximations: " + "; ".join(f"{k}: {v}" for k, v in APPROXIMATE.items())
    )
    params = (
        Param("name", "choice", "gaussian_noise", "which corruption (or all)", choices=(*CORRUPTIONS, "all")),
        Param("severity", "int", 3, "1..5 (0 = identity); ignored by name=all", low=0, high=5),
    )

    def validate(self) -> None:
        if self.name_ == "all" and self.severity != 3:
            raise RobenchError("corruption:name=all averages severities 1-5; drop the severity parameter")

    @property
    def name_(self) -> str:
        return self.values["name"]

    @property
    def spec(self) -> str:
        return "corruption:name=all" if self.name_ == "all" else super().spec

    @property
    def short(self) -> str:
        return self.spec.replace(",severity=", " s")

    def expand(self) -> list[Threat]:
        """The 75 (corruption, severity) threats behind ``name=all``; itself otherwise."""
        if self.name_ != "all":
            return [self]
        return [Corruption(name=c, severity=s) for c in CORRUPTIONS for s in SEVERITIES]

    def perturb(self, model, batch) -> Outcome:
        if self.name_ == "all":
            raise RobenchError("corruption:name=all is a summary over 75 runs; use `robench evaluate --threat corruption:name=all`")
        import torch

        from robench.threats.image.corruptions import corrupt

        x = batch.inputs
        adv = corrupt(x, self.name_, self.severity, list(batch.example_seeds))
        with torch.no_grad():
            logits = model(adv)
        return Outcome(adv=adv, adv_pred=logits.argmax(-1), queries=torch.ones(len(x), dtype=torch.float64), scores=logits)
