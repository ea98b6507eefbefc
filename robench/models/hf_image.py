"""``hf:DIR`` image classifiers: ``AutoModelForImageClassification`` + ``AutoImageProcessor``.

The library feeds such a model ``model(pixel_values=processor(images)["pixel_values"]).logits``,
where the processor resizes/crops (uint8, PIL), then computes ``(x * rescale_factor - mean) / std``.
robench splits that at the pixel boundary: the processor, with ``do_rescale=False,
do_normalize=False``, is the streamed transform of image files (:mod:`robench.data.hf_images`); the
data path gives ``x01 = x / 255``; and the wrapper (:class:`~robench.models.wrappers.ImageClassifier`)
normalises with the processor's constants folded into [0, 1] pixel space,

    mean' = mean / (255 * s),  std' = std / (255 * s),  s = rescale_factor if do_rescale else 1

(``mean = 0, std = 1`` without ``do_normalize``), so ``(x01 - mean') / std'`` is the processor's
``(x * s - mean) / std`` and every attack's eps is in pixels. The input shape (channels, and the
processor's output size: its crop when it centre-crops, else its resize) is read off the processor
itself, by running it on two probe images of different sizes and aspects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from robench.checkpoint.card import Card, ExternalArch
from robench.data.base import IMAGE
from robench.data.hf_images import image_processor, processor_pixels
from robench.errors import RobenchError
from robench.models.hf_loader import first_line, from_pretrained, hf_labels, weights_digest
from robench.models.wrappers import ImageClassifier

PROCESSOR_FILE = "preprocessor_config.json"
PROBE_SIZES = ((37, 23), (96, 61))  # (width, height) of the probe images: both aspects, both sides of most sizes


class HFImageNet(nn.Module):
    """``forward(z) -> model(pixel_values=z).logits`` on normalised pixels (what ImageClassifier calls)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor) -> Tensor:
        return self.model(pixel_values=z).logits


def _per_channel(v: Any, channels: int, what: str, spec: str) -> list[float]:
    values = [float(x) for x in (v if isinstance(v, (list, tuple)) else [v] * channels)]
    if len(values) != channels:
        raise RobenchError(f"{spec}: {PROCESSOR_FILE} gives {len(values)} {what} values for a {channels}-channel model")
    return values


def pixel_normalisation(processor: Any, channels: int, spec: str) -> tuple[list[float], list[float]]:
    """The wrapper's mean/std in [0, 1] pixel space: the processor's rescale and normalisation folded in."""
    scale = 255.0 * (float(processor.rescale_factor) if getattr(processor, "do_rescale", False) else 1.0)
    if getattr(processor, "do_normalize", False):
        mean = _per_channel(processor.image_mean, channels, "image_mean", spec)
        std = _per_channel(processor.image_std, channels, "image_std", spec)
    else:
        mean, std = [0.0] * channels, [1.0] * channels
    if min(std) <= 0 or scale <= 0:
        raise RobenchError(f"{spec}: {PROCESSOR_FILE} needs a positive image_std and rescale_factor")
    return [m / scale for m in mean], [s / scale for s in std]


def output_shape(processor: Any, channels: int, spec: str) -> tuple[int, int]:
    """``(H, W)`` the processor gives every image, checked on probe images (uint8, one shape)."""
    from PIL import Image

    mode = "RGB" if channels == 3 else "L"
    shapes = set()
    for w, h in PROBE_SIZES:
        try:
            x = processor_pixels(processor, Image.new(mode, (w, h), 128))
        except Exception as e:  # a processor that cannot take PIL images, or these settings
            raise RobenchError(f"{spec}: its image processor fails on a {w}x{h} {mode} image ({first_line(e)})") from None
        if x.dtype != torch.uint8:
            raise RobenchError(f"{spec}: its image processor gives {x.dtype} pixels with do_rescale=False, not 8-bit ones; "
                               "robench streams uint8 images into the model")
        shapes.add(tuple(x.shape))
    if len(shapes) != 1:
        raise RobenchError(f"{spec}: its image processor gives images of different shapes ({', '.join(map(str, sorted(shapes)))}) "
                           "for inputs of different sizes; robench batches one size: give it a fixed size or a center crop")
    c, h, w = shapes.pop()
    if c != channels:
        raise RobenchError(f"{spec}: its image processor gives {c}-channel images but config.json has num_channels={channels}")
    return h, w


def load_hf_image(spec: str, directory: Path, config: Any) -> tuple[ImageClassifier, Card, str]:
    """An image-classification folder: the wrapped model (raw [0, 1] pixels in) and its card."""
    if not (directory / PROCESSOR_FILE).is_file():
        raise RobenchError(f"{spec}: an image classifier needs its {PROCESSOR_FILE} (the image processor's resize, crop "
                           "and normalisation), not in that folder; save it beside the model: processor.save_pretrained(DIR)")
    from transformers import AutoModelForImageClassification

    channels = int(getattr(config, "num_channels", 3))
    if channels not in (1, 3):
        raise RobenchError(f"{spec}: config.json has num_channels={channels}; robench feeds RGB or grayscale images")
    try:
        processor = image_processor(str(directory))
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise RobenchError(f"{spec}: its {PROCESSOR_FILE} cannot be loaded ({first_line(e)})") from None
    size = output_shape(processor, channels, spec)
    mean, std = pixel_normalisation(processor, channels, spec)
    model = from_pretrained(spec, AutoModelForImageClassification, directory, "image-classification model")
    cfg = model.config
    digest = weights_digest(directory)
    card = Card(
        task=IMAGE, labels=hf_labels(cfg), architecture=ExternalArch("hf", str(cfg.model_type), cfg.num_labels),
        preprocessing={"kind": "image", "processor": "hf", "dir": str(directory), "processor_class": type(processor).__name__,
                       "channels": channels, "size": list(size), "input_range": [0.0, 1.0], "mean": mean, "std": std,
                       "geometry_source": f"{directory}/{PROCESSOR_FILE}"},
        name=spec, weights_sha256=digest, params=sum(p.numel() for p in model.parameters()),
    )
    return ImageClassifier(HFImageNet(model), mean, std), card, digest
