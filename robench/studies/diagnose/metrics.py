"""The three measures of ``robench diagnose`` on plain tensors and attention layers (formulas in
:mod:`robench.studies.diagnose`); what the tests check against direct evaluations."""

from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robench.seeds import DIAGNOSE, derive_seed


def token_uniformity(h: Tensor, mask: Tensor | None = None) -> Tensor:
    """Mean pairwise cosine similarity over ordered pairs ``i != j`` of each sequence, ``(B,)``.

    ``h`` is ``(B, N, D)``; ``mask`` ``(B, N)`` marks the tokens to use (default all). O(N D): the sum
    of all cosines is ``||sum_i h_i/||h_i|| ||^2``, minus the diagonal. NaN for fewer than 2 tokens.
    """
    hn = F.normalize(h.to(torch.float64), dim=-1)  # a zero vector stays 0: cosine 0 with everything
    if mask is None:
        n = torch.full(h.shape[:1], h.shape[1], dtype=torch.float64, device=h.device)
    else:
        hn = hn * mask[..., None].to(hn.dtype)
        n = mask.to(torch.float64).sum(-1)
    total = hn.sum(1).pow(2).sum(-1)
    diag = hn.pow(2).sum((1, 2))
    return (total - diag) / (n * (n - 1))


def layer_powers(clean: Tensor, noisy: Tensor, mask: Tensor | None = None) -> tuple[float, float]:
    """``(sum ||clean||^2, sum ||noisy - clean||^2)`` over examples, valid tokens and channels (fp64)."""
    c, d = clean.to(torch.float64), noisy.to(torch.float64) - clean.to(torch.float64)
    if mask is not None:
        m = mask[..., None].to(torch.float64)
        c, d = c * m, d * m
    return float(c.pow(2).sum()), float(d.pow(2).sum())


def snr_from_powers(signal: float, noise: float) -> float:
    """``10 log10(signal / noise)`` in dB; +inf for zero noise (NaN if the signal is 0 too)."""
    if noise == 0:
        return math.inf if signal > 0 else math.nan
    if signal == 0:
        return -math.inf
    return 10.0 * math.log10(signal / noise)


def snr_db(clean: Tensor, noisy: Tensor, mask: Tensor | None = None) -> float:
    """SNR in dB of ``noisy`` against ``clean`` ``(B, N, D)``: total signal power over total noise power."""
    return snr_from_powers(*layer_powers(clean, noisy, mask))


@torch.no_grad()
def relative_sensitivity(attn: nn.Module, x: Tensor, dx: Tensor, **kw) -> float:
    """``(||A(x+dx) - A(x)|| / ||A(x)||) / (||dx|| / ||x||)`` of an attention layer ``A`` (kw: ``pos``, ``causal``)."""
    a0, a1 = attn(x, **kw), attn(x + dx, **kw)
    return float(((a1 - a0).norm() / a0.norm()) / (dx.norm() / x.norm()))


def grid_shape(n: int) -> tuple[int, int]:
    """The most square ``(rows, cols)`` grid of ``n`` cells: rows = the largest divisor <= sqrt(n)."""
    rows = next(r for r in range(math.isqrt(n), 0, -1) if n % r == 0)
    return rows, n // rows


def token_coords(n: int, family: str) -> Tensor:
    """Integer positions of ``n`` tokens: a line (text) or the most square grid (images)."""
    if family == "text":
        return torch.arange(n)[:, None]
    rows, cols = grid_shape(n)
    r, c = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([r.flatten(), c.flatten()], dim=1)


def sensitivity_inputs(n: int, dim: int, delta: float, seed: int, draw: int) -> tuple[Tensor, Tensor]:
    """Draw ``draw`` of length ``n``: ``x`` ``(1, n, dim)`` standard normal (fp64, CPU RNG seeded by
    ``(seed, n, draw)``) and ``dx`` in an independent random direction with ``||dx|| = delta ||x||``."""
    g = torch.Generator().manual_seed(derive_seed(seed, DIAGNOSE, n, draw))
    x = torch.randn(1, n, dim, generator=g, dtype=torch.float64)
    u = torch.randn(1, n, dim, generator=g, dtype=torch.float64)
    return x, u * (delta * x.norm() / u.norm())


@torch.no_grad()
def attention_sensitivity(attn: nn.Module, family: str, lengths: Sequence[int], delta: float = 1e-3,
                          draws: int = 4, seed: int = 0, device: torch.device | str = "cpu",
                          causal: bool = False) -> dict[int, float]:
    """Mean relative sensitivity of the attention layer ``attn`` for each length (module docstring);
    ``causal``: with the causal mask (language models).

    ``attn`` (a :class:`~robench.models.attention.Attention`) is copied to float64 on ``device``;
    draws are seeded by ``(seed, N, draw)`` on the CPU, so results do not depend on the device's RNG.
    """
    from robench.models.attention import TokenPositions

    layer = copy.deepcopy(attn).to(device=device, dtype=torch.float64).eval()
    dim = layer.qkv.in_features
    out = {}
    for n in lengths:
        pos = None
        if layer.needs_positions:  # BSA's spatial kernel, ALiBi's distances
            pos = TokenPositions(token_coords(n, family), num_prefix=0).to(device)(n, torch.float64)
        values = []
        for d in range(draws):
            x, dx = sensitivity_inputs(n, dim, delta, seed, d)
            values.append(relative_sensitivity(layer, x.to(device), dx.to(device), pos=pos, causal=causal))
        out[n] = sum(values) / len(values)
    return out
