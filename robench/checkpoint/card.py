"""The checkpoint card: ``NAME.json`` beside ``NAME.safetensors`` (docs/checkpoint-card.md).

The card is plain JSON, read as data only: nothing in it is ever evaluated. It carries what is
needed to rebuild the model (architecture), to feed it correctly (the preprocessing contract), to
know where it came from (training provenance) and what it scored (clean accuracy with n).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from robench.data.base import IMAGE, LM, TEXT
from robench.errors import RobenchError
from robench.models.config import ArchConfig

CARD_FORMAT = "robench-card"
CARD_VERSION = 1
TASKS = (IMAGE, TEXT, LM)


@dataclass
class ExternalArch:
    """Architecture of a model robench did not build: a timm model (or, later, a Hugging Face one)."""

    family: str
    name: str
    num_classes: int
    kwargs: dict[str, Any] = field(default_factory=dict)
    variant: str = "external"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


EXTERNAL_FAMILIES = ("timm", "hf")


@dataclass
class Card:
    """Everything robench knows about one checkpoint besides its weights."""

    task: str
    labels: list[str]
    architecture: ArchConfig | ExternalArch
    preprocessing: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    params: int = 0
    weights_sha256: str = ""

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise RobenchError(f"card task {self.task!r} is not one of: {', '.join(TASKS)}")
        if len(self.labels) != self.architecture.num_classes:
            raise RobenchError(
                f"card lists {len(self.labels)} labels but the architecture has "
                f"{self.architecture.num_classes} classes; fix 'labels' or 'num_classes' in the card"
            )

    @property
    def variant(self) -> str:
        return self.architecture.variant

    def to_dict(self) -> dict[str, Any]:
        d = {"format": CARD_FORMAT, "format_version": CARD_VERSION}
        d.update(asdict(self))
        d["architecture"] = self.architecture.to_dict()
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "card") -> "Card":
        if not isinstance(d, dict) or d.get("format") != CARD_FORMAT:
            raise RobenchError(f"{source} is not a robench checkpoint card (no \"format\": \"{CARD_FORMAT}\")")
        version = d.get("format_version")
        if version != CARD_VERSION:
            raise RobenchError(
                f"{source} has card format_version {version!r}; this robench reads version {CARD_VERSION}"
            )
        try:
            return cls(
                task=d["task"],
                labels=list(d["labels"]),
                architecture=(
                    ExternalArch(**d["architecture"]) if d["architecture"].get("family") in EXTERNAL_FAMILIES
                    else ArchConfig.from_dict(d["architecture"])
                ),
                preprocessing=dict(d["preprocessing"]),
                training=dict(d.get("training", {})),
                evaluation=dict(d.get("evaluation", {})),
                name=str(d.get("name", "")),
                params=int(d.get("params", 0)),
                weights_sha256=str(d.get("weights_sha256", "")),
            )
        except KeyError as e:
            raise RobenchError(f"{source} is missing the required field {e.args[0]!r}") from None
        except (TypeError, ValueError) as e:
            raise RobenchError(f"{source} has a malformed field: {e}") from None

    @classmethod
    def read(cls, path: Path) -> "Card":
        """Read and validate a card file."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RobenchError(
                f"checkpoint card {path} not found; a robench checkpoint needs its NAME.json card beside NAME.safetensors"
            ) from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise RobenchError(f"checkpoint card {path} is not valid JSON ({e.msg} at line {e.lineno})") from None
        return cls.from_dict(data, source=f"checkpoint card {path}")


def image_preprocessing(channels: int, size: int, mean: list[float], std: list[float], crop_pct: float | None = None,
                        crop_mode: str | None = None, interpolation: str | None = None) -> dict[str, Any]:
    """The image preprocessing contract: inputs in [0, 1], normalised inside the model wrapper.

    ``crop_pct``, ``crop_mode`` and ``interpolation`` say how an image file of any size becomes a
    ``size`` x ``size`` input (timm's eval transform, robench.data.preprocess); a card without them
    means crop_pct 1, centre crop, bilinear: images already at ``size`` pass unchanged.
    """
    pre: dict[str, Any] = {
        "kind": "image",
        "channels": channels,
        "size": [size, size],
        "input_range": [0.0, 1.0],
        "mean": list(mean),
        "std": list(std),
    }
    for key, value in (("crop_pct", crop_pct), ("crop_mode", crop_mode), ("interpolation", interpolation)):
        if value is not None:
            pre[key] = value
    return pre
