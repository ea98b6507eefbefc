"""The threat interface: a callable object with explicit parameters and a canonical ``repr``.

``threat(model, batch) -> Outcome`` for every modality (torchattacks' style): a :class:`ThreatBatch`
of correctly classified examples (images in [0, 1] pixel space, or texts) goes in; out comes, per
example, the adversarial input kept (image threats: the first iterate that broke it, else the final
one), the model's prediction on it and the scores it came from, the model queries spent, and the
size of the perturbation. A subclass implements :meth:`Threat.perturb`; its modality's base class
(:mod:`robench.threats.image.base`, :mod:`robench.threats.text.base`) measures the perturbation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

from robench.threats.registry import Param
from robench.threats.spec import format_number

if TYPE_CHECKING:  # torch is imported where threats compute, so listing them (`robench threats`) stays fast
    from torch import Tensor, nn


CLEAN = "none"  # the threat column of the clean pass: nothing attacked
NO_PERTURBATION = "none"  # the perturbation unit of a row where nothing was perturbed (the clean pass)


@dataclass
class ThreatBatch:
    """What a threat attacks: one batch of examples the model classifies correctly."""

    inputs: Tensor | list[str]  # (B, C, H, W) images in [0, 1] on the model's device, or B texts
    labels: Tensor  # (B,) true labels (on the images' device; on the CPU for texts)
    num_classes: int  # the model's output classes (AutoAttack's n_classes)
    seed: int = 0  # seeds the batch as a whole (torchattacks' random starts)
    example_seeds: Sequence[int] | None = None  # seeds each example (corruptions, text threats); None: seed + i

    def __post_init__(self) -> None:
        if self.example_seeds is None:
            self.example_seeds = [self.seed + i for i in range(len(self.labels))]


@dataclass
class Outcome:
    """What a threat did to each example of a batch.

    ``adv``, ``adv_pred``, ``queries`` and ``scores`` come from the threat's :meth:`Threat.perturb`;
    the sizes of the perturbation are filled by its modality's :meth:`Threat.measure`.
    """

    adv: Tensor | list[str]  # the adversarial inputs kept for each example (images or texts)
    adv_pred: Tensor  # (B,) the model's prediction on ``adv``
    queries: Tensor  # (B,) float: model queries spent per example
    scores: Tensor  # (B, classes) the logits (images) or probabilities (texts) ``adv_pred`` came from
    perturbation: Sequence[float] | None = None  # (B,) size of ``adv - inputs`` in the threat's ``perturbation_unit``
    linf: Tensor | None = None  # (B,) float64 Linf size (image threats)
    l2: Tensor | None = None  # (B,) float64 L2 size (image threats)
    adv_text: list[str] | None = None  # the adversarial texts the records keep (text threats)


class Threat:
    """Base class. Subclasses set ``name``, ``modality``, ``params``, ``perturbation_unit`` and
    implement :meth:`perturb`; calling a threat runs it and measures its perturbation."""

    name: ClassVar[str]
    modality: ClassVar[str]  # "image" or "text"
    params: ClassVar[tuple[Param, ...]] = ()
    # The unit of the perturbation column: "linf", "l2", "mean_abs", "words" or "none". Threats with a
    # ``norm`` parameter (apgd, square, autoattack) take the norm their spec chose, per instance.
    perturbation_unit: str = NO_PERTURBATION
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
        if "norm" in self.values:  # the threat norm the spec chose is the unit its perturbation is measured in
            self.perturbation_unit = self.values["norm"]
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

    def __call__(self, model: nn.Module, batch: ThreatBatch) -> Outcome:
        """Attack ``batch`` with ``model`` and measure the perturbation of each example."""
        return self.measure(batch, self.perturb(model, batch))

    def perturb(self, model: nn.Module, batch: ThreatBatch) -> Outcome:
        """The attack itself: adversarial inputs, predictions, scores and queries (no sizes yet)."""
        raise NotImplementedError

    def measure(self, batch: ThreatBatch, outcome: Outcome) -> Outcome:
        """``outcome`` with the perturbation sizes filled in; each modality's base class says how."""
        raise NotImplementedError

    def expand(self) -> list["Threat"]:
        """The threats this one stands for (``corruption:name=all`` stands for 75); itself by default."""
        return [self]

