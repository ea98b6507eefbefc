"""Seeded piecewise-smooth test signals in [0, 1] and their Gaussian-noise versions.

1-D: a length-``n`` signal cut at random points into 4-8 segments, each constant or linear between
two uniform levels. 2-D: a ``size x size`` image, a linear ramp background with 3-5 constant
rectangles and discs drawn over it. The noise is additive, ``N(0, sigma^2)``, and not clipped
(clipping would bias the noise and change what ``sigma`` means).
"""

from __future__ import annotations

import numpy as np

KINDS = ("1d", "2d")
SPLITS = {"train": 0, "test": 1}


def _rng(seed: int, kind: str, split: str, *extra: int) -> np.random.Generator:
    """One independent stream per (seed, kind, split, ...): train and test never share draws."""
    return np.random.default_rng([seed, KINDS.index(kind), SPLITS[split], *extra])


def signal_1d(rng: np.random.Generator, n: int = 256) -> np.ndarray:
    """Piecewise constant/linear signal of length ``n`` in [0, 1]."""
    cuts = np.sort(rng.choice(np.arange(8, n - 8), size=int(rng.integers(3, 8)), replace=False))
    edges = np.concatenate([[0], cuts, [n]])
    out = np.empty(n)
    for a, b in zip(edges[:-1], edges[1:]):
        lo, hi = rng.uniform(0, 1, 2)
        if rng.random() < 0.5:
            hi = lo  # a constant segment
        out[a:b] = np.linspace(lo, hi, b - a)
    return out


def signal_2d(rng: np.random.Generator, size: int = 32) -> np.ndarray:
    """Piecewise-smooth ``size x size`` image in [0, 1]: a ramp background and constant shapes."""
    r, c = np.mgrid[0:size, 0:size] / (size - 1)
    lo, hi = rng.uniform(0, 1, 2)
    t = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(t) * (r - 0.5) + np.sin(t) * (c - 0.5)) / np.sqrt(2) + 0.5  # in [0, 1]
    out = lo + (hi - lo) * ramp
    for _ in range(int(rng.integers(3, 6))):
        value = rng.uniform(0, 1)
        cr, cc = rng.uniform(0.1, 0.9, 2)
        hr, hc = rng.uniform(0.08, 0.3, 2)
        if rng.random() < 0.5:
            inside = (np.abs(r - cr) < hr) & (np.abs(c - cc) < hc)
        else:
            inside = (r - cr) ** 2 + (c - cc) ** 2 < hr**2
        out[inside] = value
    return out


def clean_signals(kind: str, split: str, seed: int, count: int, size: int) -> np.ndarray:
    """``count`` clean signals, ``(count, size)`` (1-D) or ``(count, size, size)`` (2-D)."""
    rng = _rng(seed, kind, split)
    make = signal_1d if kind == "1d" else signal_2d
    return np.stack([make(rng, size) for _ in range(count)])


def add_noise(clean: np.ndarray, sigma: float, seed: int, kind: str, split: str) -> np.ndarray:
    """``clean + N(0, sigma^2)``, seeded by (seed, kind, split, sigma in thousandths)."""
    rng = _rng(seed, kind, split, int(round(sigma * 1000)), 1)
    return clean + sigma * rng.standard_normal(clean.shape)
