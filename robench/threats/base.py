"""The threat interface: a callable object with explicit parameters and a canonical ``repr``.

An image threat attacks a batch of correctly classified images in [0, 1] pixel space and returns,
per example, the adversarial input kept (the first iterate that broke it, else the final one),
whether *any* iterate broke it, and how many model queries it spent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from robench.threats.registry import Param
from robench.threats.spec import format_number

if TYPE_CHECKING:  # torch is imported where threats compute, so listing them (`robench threats`) stays fast
    from torch import Tensor, nn


@dataclass
class AttackOutcome:
    adv: Tensor  # (B, ...) adversarial inputs kept for each example
    adv_pred: Tensor  # (B,) the model's prediction on ``adv``
    queries: Tensor  # (B,) float: forward passes spent per example
    adv_logits: Tensor | None = None  # (B, classes) the model's logits on ``adv`` (top-5 accuracy)


class Threat:
    """Base class. Subclasses set ``name``, ``modality``, ``params``, ``norm`` and implement ``attack``."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "image" or "text"
    params: ClassVar[tuple[Param, ...]] = ()
    # "linf", "l2" or "none": the unit of the perturbation column. Threats with a ``norm`` parameter
    # (apgd, square, autoattack) get it as an instance attribute with the same values.
    norm: str = "none"
    summary: ClassVar[str] = ""
    # What the attack uses of the model: "gradient", "query" (scores only), "ensemble" (both) or
    # "none" (contamination, corruptions). The sanity battery compares gradient and query attacks.
    access: ClassVar[str] = "none"
    always_show: ClassVar[tuple[str, ...]] = ()  # parameters the display form shows even at their default

    def __init__(self, **values: Any) -> None:
        given = {p.name: values[p.name] for p in self.params if p.name in values}
        self.given = set(given)  # what the spec set (with_values keeps derived defaults following)
        plain = {p.name: given.get(p.name, p.default) for p in self.params}
        # a derived default (PGD's alpha = eps/4) follows the value its source parameter actually has
        self.values = {p.name: given[p.name] if p.name in given else p.derive(plain) for p in self.params}
        for k, v in self.values.items():
            if k != "name":  # a parameter called "name" (corruption:name=...) must not rename the threat
                setattr(self, k, v)
        self.validate()

    def validate(self) -> None:
        """Cross-parameter checks (single-parameter bounds live in :class:`Param`)."""

    def check_available(self) -> None:
        """Raise :class:`~robench.errors.RobenchError` (saying how to provide it) when something this
        threat needs at run time is missing: a package, WordNet, a download. Commands call it before
        any model work, so a long run does not fail after its clean passes. Cheap: imports nothing heavy."""

    def warm_up(self) -> None:
        """Load what the first attack would otherwise load on the clock (imports, WordNet's index),
        so that a row's ``seconds`` are the threat's own work. Called untimed before each threat."""

    def with_values(self, **changes: Any) -> "Threat":
        """A copy with some parameters changed (only those this threat has)."""
        known = {p.name for p in self.params}
        given = {k: v for k, v in self.values.items() if k in self.given}  # derived ones re-derive (alpha follows eps)
        return type(self)(**{**given, **{k: v for k, v in changes.items() if k in known}})

    @property
    def spec(self) -> str:
        """Canonical spec: every parameter, sorted by name, numbers normalised."""
        if not self.params:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_number(self.values[k])}" for k in sorted(self.values))

    @property
    def short(self) -> str:
        """Display form: only the parameters that differ from their defaults; a derived parameter
        (alpha = eps/4) is shown whenever its source is, so a step size is never hidden beside an eps."""
        shown = {p.name for p in self.params if self.values[p.name] != p.derive(self.values) or p.name in self.always_show}
        shown |= {p.name for p in self.params if p.follows in shown}
        changed = {p.name: self.values[p.name] for p in self.params if p.name in shown}
        if not changed:
            return self.name
        return self.name + ":" + ",".join(f"{k}={format_number(v)}" for k, v in sorted(changed.items()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={self.values[k]!r}" for k in sorted(self.values))
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Threat) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def attack(self, model: nn.Module, x: Tensor, y: Tensor, num_classes: int, seed: int,
               example_seeds: list[int] | None = None) -> AttackOutcome:
        """Attack a batch; ``seed`` seeds the batch, ``example_seeds`` (when given) each example."""
        raise NotImplementedError

    def expand(self) -> list["Threat"]:
        """The threats this one stands for (``corruption:name=all`` stands for 75); itself by default."""
        return [self]


def perturbation_norms(adv: Tensor, x: Tensor) -> dict[str, Tensor]:
    """Per-example sizes of ``adv - x``: Linf, L2 and mean absolute change."""
    import torch

    d = (adv - x).flatten(1).to(torch.float64)
    return {"linf": d.abs().amax(1), "l2": d.norm(dim=1), "mean_abs": d.abs().mean(1)}
