"""Per-example records: the source every summary number is computed from."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

from robench.fileio import atomic_write_text


@dataclass
class Record:
    """What happened to one example under one threat.

    ``attacked_pred`` equals ``clean_pred`` for examples that were misclassified when clean (they
    are not attacked) and for the clean threat ``none``.
    """

    id: int
    label: int
    clean_pred: int
    attacked_pred: int
    perturbation: float = 0.0  # in the threat's unit (Linf or L2 pixels, changed-word fraction, ...)
    queries: float = 0.0
    linf: float = 0.0
    l2: float = 0.0
    adv_text: str | None = None  # text threats: the adversarial / contaminated text
    # The 5 highest-scoring classes, best first, for models with 6 classes or more (else None).
    # Examples not attacked (wrong when clean) keep their clean top 5 as attacked_top5, but count
    # as not robust at top-5 either (robust_top5), as at top-1.
    clean_top5: list[int] | None = None
    attacked_top5: list[int] | None = None
    # ImageNet ReaL (imagenet-real:DIR): the image's ReaL labels as class indices of the model
    real_labels: list[int] | None = None

    @property
    def clean_correct(self) -> bool:
        return self.clean_pred == self.label

    @property
    def robust(self) -> bool:
        return self.clean_correct and self.attacked_pred == self.label

    @property
    def clean_top5_correct(self) -> bool:
        return self.clean_top5 is not None and self.label in self.clean_top5

    @property
    def robust_top5(self) -> bool:
        """Correct (top-1) when clean, so attacked, and the true label still among the 5 best
        classes after the threat: like robust top-1, an example wrong when clean is not robust."""
        return self.clean_correct and self.attacked_top5 is not None and self.label in self.attacked_top5


@dataclass
class Summary:
    n: int
    clean_correct: int
    robust: int
    broken: int
    mean_perturbation: float
    mean_queries: float
    clean_top5: int | None = None  # examples with the label in the clean / attacked top 5 (None: < 6 classes)
    robust_top5: int | None = None

    @property
    def clean_acc(self) -> float:
        return self.clean_correct / self.n

    @property
    def attacked_acc(self) -> float:
        return self.robust / self.n

    @property
    def attack_success_rate(self) -> float:
        """Broken / attacked; attacked = correctly classified when clean."""
        return self.broken / self.clean_correct if self.clean_correct else 0.0


def summarize(records: Iterable[Record]) -> Summary:
    """Counts and means with TextAttack's conventions: perturbation is averaged over successful
    attacks (broken examples), queries over attacked (not skipped) examples."""
    recs = list(records)
    attacked = [r for r in recs if r.clean_correct]
    broken = [r for r in attacked if not r.robust]
    top5 = bool(recs) and all(r.clean_top5 is not None for r in recs)
    return Summary(
        n=len(recs),
        clean_correct=len(attacked),
        robust=len(attacked) - len(broken),
        broken=len(broken),
        mean_perturbation=sum(r.perturbation for r in broken) / len(broken) if broken else 0.0,
        mean_queries=sum(r.queries for r in attacked) / len(attacked) if attacked else 0.0,
        clean_top5=sum(r.clean_top5_correct for r in recs) if top5 else None,
        robust_top5=sum(r.robust_top5 for r in recs) if top5 else None,
    )


def write_records(path: Path, records: Iterable[Record]) -> None:
    """Write records as JSONL atomically."""
    atomic_write_text(path, "".join(json.dumps(asdict(r)) + "\n" for r in records))


def read_records(path: Path) -> list[Record]:
    return [Record(**json.loads(line)) for line in Path(path).read_text().splitlines() if line.strip()]
