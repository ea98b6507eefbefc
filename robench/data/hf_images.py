"""A Hugging Face image processor as the streamed transform of an ``hf:DIR`` image classifier.

The processor itself resizes and crops every image (``AutoImageProcessor`` from DIR, local files
only: the object ``model(**processor(images))`` is fed by), called with ``do_rescale=False,
do_normalize=False`` so that it hands back 8-bit pixels: the data path turns them into [0, 1]
floats as for every other model, and the processor's rescaling and normalisation are folded into
the model wrapper (:mod:`robench.models.hf_image`), so every eps stays in [0, 1] pixel space.
Nothing here re-implements the processor's geometry; :func:`describe_processor` only names it.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import torch

RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # PIL's codes


def quiet_transformers() -> None:
    """transformers' warnings (slow-processor notices, long-sequence notes) are not robench's output."""
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()


def image_processor(directory: str) -> Any:
    """The image processor saved in ``directory`` (loaded once per process and version of its
    preprocessor_config.json: decoding workers too, and an edited file is read again)."""
    return _load_processor(directory, processor_version(directory))


def processor_version(directory: str) -> tuple[int, int]:
    """(mtime, size) of the folder's preprocessor_config.json: the processor cache's key."""
    try:
        st = os.stat(os.path.join(directory, "preprocessor_config.json"))
    except OSError:
        return (0, 0)
    return (st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=8)
def _load_processor(directory: str, stamp: tuple[int, int]) -> Any:
    from transformers import AutoImageProcessor

    quiet_transformers()
    return AutoImageProcessor.from_pretrained(directory, local_files_only=True)


def processor_pixels(processor: Any, img) -> torch.Tensor:
    """``processor``'s resize and crop of one PIL image, without rescale or normalisation: ``(C, H, W)``."""
    return processor(img, do_rescale=False, do_normalize=False, return_tensors="pt")["pixel_values"][0]


class HFImageTransform:
    """PIL image -> uint8 tensor ``(C, H, W)`` by the processor of ``directory``.

    Holds the folder, not the processor, so DataLoader workers receive a cheap picklable object and
    load the processor once each. :func:`robench.models.hf_image.load_hf_image` checked at load
    time that this processor gives uint8 pixels of one shape.
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.version = processor_version(directory)  # once per run, not one stat per image

    def __call__(self, img) -> torch.Tensor:
        return processor_pixels(_load_processor(self.directory, self.version), img)


def _size(d: Any) -> str:
    if isinstance(d, dict):
        if "height" in d and "width" in d:
            return f"{d['height']}" if d["height"] == d["width"] else f"{d['height']}x{d['width']}"
        return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items() if v is not None)
    return str(d)


def describe_processor(directory: str, channels: int) -> str:
    """One line naming what the processor of ``directory`` does to every image (its own fields)."""
    p = image_processor(directory)
    steps = []
    if getattr(p, "do_resize", False):
        resample = getattr(p, "resample", None)
        resample = getattr(resample, "value", resample)
        steps.append(f"resize {_size(getattr(p, 'size', ''))} {RESAMPLE.get(resample, str(resample))}".rstrip())
    if getattr(p, "do_center_crop", False):
        steps.append(f"center crop {_size(getattr(p, 'crop_size', ''))}")
    mode = "RGB" if channels == 3 else "grayscale"
    return f"{type(p).__name__}: {', '.join(steps) or 'no resize'} (preprocessor_config.json), {mode}"
