"""Relative-position baselines for softmax attention: ALiBi linear biases and rotary embeddings (RoPE).

ALiBi (Press et al., 2022) adds ``-m_h * dist(i, j)`` to head ``h``'s logits, with the standard
geometric slopes ``m_h`` (:func:`alibi_slopes`); ``dist`` is the Euclidean distance between the
tokens' positions (``|i - j|`` for text and language models, the patch-grid distance for a ViT), 0
in a prefix (CLS) token's row and column. RoPE (Su et al., 2021) rotates each head's ``q`` and ``k``
by position-dependent angles ``pos * base^(-2i/d)`` (base 10000, halves paired as in GPT-NeoX), so
``q_i.k_j`` depends on ``i - j`` only; the position is the token's index in the sequence (CLS is
index 0; a ViT's patches are 1..M in raster order: RoPE is 1-D over the patch sequence).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

ROPE_BASE = 10000.0


def alibi_slopes(num_heads: int) -> list[float]:
    """ALiBi's per-head slopes: ``2^(-8 h / H)`` for ``h = 1..H`` when ``H`` is a power of 2, else the
    reference recipe (the slopes of the nearest lower power of 2, then every other slope of the next)."""

    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(num_heads).is_integer():
        return power_of_2(num_heads)
    closest = 2 ** math.floor(math.log2(num_heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][: num_heads - closest]


def alibi_bias(slopes: Tensor, sq_dist: Tensor) -> Tensor:
    """``(1, H, N, N)`` additive bias ``-m_h * sqrt(sq_dist)`` in ``slopes``' dtype."""
    dist = sq_dist.to(torch.float64).sqrt().to(slopes.dtype)
    return -(slopes[:, None, None] * dist[None])[None]


def rope_tables(n: int, head_dim: int, dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """``cos, sin`` of shape ``(N, head_dim)`` for positions ``0..N-1`` (each angle twice: both halves)."""
    inv_freq = ROPE_BASE ** (-torch.arange(0, head_dim, 2, dtype=torch.float64, device=device) / head_dim)
    angles = torch.arange(n, dtype=torch.float64, device=device)[:, None] * inv_freq[None]
    angles = torch.cat([angles, angles], -1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate ``x`` ``(..., N, d)``: ``x * cos + rotate_half(x) * sin``, ``rotate_half([a, b]) = [-b, a]``."""
    a, b = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-b, a], -1) * sin
