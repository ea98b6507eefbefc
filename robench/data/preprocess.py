"""How an image file becomes a model input: resize, crop and interpolation, from the model.

The transform is timm's own eval transform (``timm.data.create_transform(..., is_training=False)``,
the one ``timm``'s ``validate.py`` feeds a model with): resize the shorter side to
``floor(size / crop_pct)`` with the model's interpolation, then centre crop to ``size`` (or timm's
``squash``/``border`` crop modes). Normalisation is left out of it (``normalize=False``): it lives
inside the model wrapper, so every attack's eps stays in [0, 1] pixel space.

A timm model takes these fields from its data config (``resolve_data_config(model=...,
use_test_size=True)``, as validate.py does); a robench card stores them in its preprocessing
contract (``crop_pct``, ``crop_mode``, ``interpolation``; cards without them mean ``crop_pct`` 1:
resize the shorter side to the model size and centre crop, which leaves images already at that size
untouched). ``--img-size``, ``--crop-pct`` and ``--interpolation`` override either.

An ``hf:DIR`` image classifier brings its own image processor instead (``processor``: the folder
of its ``preprocessor_config.json``): the processor itself resizes and crops
(:mod:`robench.data.hf_images`), and the overrides are refused, since they would describe a
geometry the processor does not have (edit its preprocessor_config.json instead).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from robench.errors import RobenchError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos", "box", "hamming")
CROP_MODES = ("center", "squash", "border")


@dataclass(frozen=True)
class Preprocessing:
    """The geometry of one model's image inputs (normalisation excluded)."""

    channels: int
    size: tuple[int, int]  # (H, W) the model takes
    crop_pct: float = 1.0
    crop_mode: str = "center"
    interpolation: str = "bilinear"
    mean: tuple[float, ...] = ()  # the model's normalisation (applied inside the model wrapper); fills timm's border crop
    source: str = "card"  # where the fields came from: "card", "timm data config", "--img-size/--crop-pct/--interpolation"
    processor: str = ""  # an hf: model's folder: its Hugging Face image processor resizes and crops (size: its output)

    def __post_init__(self) -> None:
        if not 0 < self.crop_pct <= 1:  # (--crop-pct itself is checked with the run's options)
            raise RobenchError(f"crop_pct must be in (0, 1], got {self.crop_pct} ({self.source})")
        if self.interpolation not in INTERPOLATIONS:
            raise RobenchError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r} ({self.source})")
        if self.crop_mode not in CROP_MODES:
            raise RobenchError(f"crop_mode must be one of {', '.join(CROP_MODES)}, got {self.crop_mode!r}")
        if min(self.size) < 1 or self.channels not in (1, 3):
            raise RobenchError(f"image preprocessing needs 1 or 3 channels and a positive size, got {self.channels} x {self.size}")

    @property
    def mode(self) -> str:
        """The PIL mode images are converted to before the transform (timm converts to RGB)."""
        return "L" if self.channels == 1 else "RGB"

    @property
    def resize(self) -> int | tuple[int, int]:
        """What timm resizes to: the shorter side (centre crop) or both sides (squash)."""
        import math

        scaled = tuple(math.floor(s / self.crop_pct) for s in self.size)
        return scaled[0] if self.crop_mode == "center" and scaled[0] == scaled[1] else scaled

    def transform(self):
        """timm's eval transform for these fields (or the hf: model's own image processor),
        PIL image -> uint8 tensor ``(C, H, W)``."""
        if self.processor:
            from robench.data.hf_images import HFImageTransform

            return HFImageTransform(self.processor)
        from timm.data import create_transform

        return create_transform(
            input_size=(self.channels, *self.size), is_training=False, interpolation=self.interpolation,
            crop_pct=self.crop_pct, crop_mode=self.crop_mode, mean=self.mean or (0.5,) * self.channels,
            normalize=False,
        )

    def train_transform(self):
        """timm's default train transform at this size (``create_transform(is_training=True)``:
        RandomResizedCrop, horizontal flip, colour jitter 0.4), PIL -> uint8 tensor; ``robench
        train --augment``."""
        from timm.data import create_transform

        return create_transform(input_size=(self.channels, *self.size), is_training=True,
                                mean=self.mean or (0.5,) * self.channels, normalize=False)

    def describe(self) -> str:
        """One line for the run header and the rows: what happens to every image."""
        if self.processor:
            from robench.data.hf_images import describe_processor

            return describe_processor(self.processor, self.channels)
        h, w = self.size
        size = f"{h}" if h == w else f"{h}x{w}"
        r = self.resize
        resized = f"{r}" if isinstance(r, int) else f"{r[0]}x{r[1]}"
        mode = "RGB" if self.channels == 3 else "grayscale"
        if self.crop_mode == "center":
            what = f"resize {resized} {self.interpolation}, center crop {size}"
        elif self.crop_mode == "squash":
            what = f"squash {resized} {self.interpolation}, center crop {size}"
        else:
            what = f"fit {resized} {self.interpolation}, pad/crop {size}"
        return f"{what} (crop_pct {self.crop_pct:g}), {mode}"

    def with_overrides(self, img_size: int | None = None, crop_pct: float | None = None,
                       interpolation: str | None = None) -> "Preprocessing":
        """``--img-size/--crop-pct/--interpolation`` applied (``None`` keeps the field)."""
        if img_size is None and crop_pct is None and interpolation is None:
            return self
        if self.processor:
            raise RobenchError(f"--img-size/--crop-pct/--interpolation do not apply to an hf: image model: its image "
                               f"processor ({self.processor}/preprocessor_config.json) resizes and crops; drop them "
                               "or edit that file's size/crop_size/resample")
        if img_size is not None and img_size < 1:
            raise RobenchError(f"--img-size must be >= 1, got {img_size}")
        return replace(
            self, size=(img_size, img_size) if img_size is not None else self.size,
            crop_pct=self.crop_pct if crop_pct is None else float(crop_pct),
            interpolation=interpolation or self.interpolation,
            source=f"{self.source} + --img-size/--crop-pct/--interpolation",
        )


def from_contract(pre: dict[str, Any]) -> Preprocessing:
    """The geometry of a card's image preprocessing contract."""
    size = pre["size"]
    return Preprocessing(
        channels=int(pre["channels"]), size=(int(size[0]), int(size[1])),
        crop_pct=float(pre.get("crop_pct", 1.0)), crop_mode=str(pre.get("crop_mode", "center")),
        interpolation=str(pre.get("interpolation", "bilinear")), mean=tuple(float(m) for m in pre.get("mean", ())),
        source=str(pre.get("geometry_source", "card")),
        processor=str(pre["dir"]) if pre.get("processor") == "hf" else "",
    )
