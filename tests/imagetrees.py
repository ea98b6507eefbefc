"""Generated image trees for the streaming tests: real digits (scikit-learn's 8x8 set) upscaled to
mixed sizes, saved as JPEG/PNG in RGB, grayscale and palette/alpha modes, in synset folders."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np


def digit_images(n: int, seed: int = 0) -> tuple[list[np.ndarray], list[int]]:
    """``n`` 8x8 digit images as uint8 arrays, and their digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(d.target), size=n, replace=False)
    return [(d.images[i] * 255 / 16).round().astype(np.uint8) for i in idx], [int(d.target[i]) for i in idx]


def mixed_image(pixels: np.ndarray, rng: random.Random):
    """A PIL image of ``pixels`` at a random size (28..96 px per side), in a random mode."""
    from PIL import Image

    im = Image.fromarray(pixels, "L").resize((rng.randint(28, 96), rng.randint(28, 96)), Image.BICUBIC)
    r = rng.random()
    if r < 0.5:
        tint = tuple(rng.randint(0, 60) for _ in range(3))
        return Image.merge("RGB", [im.point(lambda v, t=t: min(255, v + t)) for t in tint]), ".jpg"
    if r < 0.75:
        return im, ".png"  # grayscale
    if r < 0.9:
        return im.convert("RGBA"), ".png"  # alpha channel: timm's convert("RGB") drops it
    return im.convert("P"), ".png"  # palette


def make_tree(root: Path, classes: list[str], per_class: int, seed: int = 0, name=None) -> list[Path]:
    """``root/CLASS/*`` with ``per_class`` images of digit ``i`` in ``classes[i]``; returns the files.
    ``name(c, k)`` gives the file stem (default ``img{k}``)."""
    rng = random.Random(seed)
    images, digits = digit_images(len(classes) * 60, seed)
    files = []
    for ci, c in enumerate(classes):
        pool = [im for im, d in zip(images, digits) if d == ci % 10][:per_class]
        (root / c).mkdir(parents=True, exist_ok=True)
        for k, px in enumerate(pool):
            im, ext = mixed_image(px, rng)
            path = root / c / f"{name(c, k) if name else f'img{k}'}{ext}"
            im.save(path, quality=90) if ext == ".jpg" else im.save(path)
            files.append(path)
    return files
