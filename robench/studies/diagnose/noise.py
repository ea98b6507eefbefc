"""The seeded noise of the SNR measure: Gaussian pixel noise for images, token replacement for text."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from robench.data.base import IMAGE
from robench.errors import RobenchError
from robench.models.loading import LoadedModel


def gaussian_pixel_noise(x: Tensor, sigma: float, seeds: Sequence[int]) -> Tensor:
    """``clamp(x + sigma * eps, 0, 1)``, ``eps`` standard normal drawn per example from its seed (CPU RNG)."""
    eps = torch.stack([torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(s)) for s in seeds])
    return (x + sigma * eps.to(x.device, x.dtype)).clamp(0.0, 1.0)


def replace_tokens(ids: Tensor, rate: float, vocab_size: int, seeds: Sequence[int], pad_id: int = 0,
                   specials: Sequence[int] = (0, 1)) -> Tensor:
    """Each non-pad token replaced with probability ``rate`` by a different, uniformly drawn non-special id."""
    import numpy as np

    allowed = np.array([i for i in range(vocab_size) if i not in set(specials)])
    out = ids.clone()
    for b, s in enumerate(seeds):
        rng = np.random.default_rng(s)
        row = out[b].tolist()
        hits = rng.random(len(row)) < rate
        for i, tok in enumerate(row):
            if tok != pad_id and hits[i]:
                choices = allowed[allowed != tok]
                row[i] = int(choices[int(rng.integers(len(choices)))])
        out[b] = torch.tensor(row, dtype=ids.dtype)
    return out


def check_noise(model: LoadedModel, noise: float) -> None:
    """A text model's noise is a rate: it must lie in [0, 1] (an image's sigma only needs >= 0)."""
    if model.task != IMAGE and not 0 <= noise <= 1:
        raise RobenchError(f"--noise is a token replacement rate for text model {model.name}: it must be in [0, 1], got {noise:g}")


def noise_description(model: LoadedModel, level: float) -> str:
    """The SNR noise of ``model`` in words (the plot title and the CLI caption)."""
    if model.task == IMAGE:
        return f"pixel gaussian sigma={level:g}, clamped to [0,1]"
    return f"token replacement rate={level:g}"
