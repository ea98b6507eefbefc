"""Token positions shared by every attention layer of a model (BSA's spatial kernel, ALiBi's distances).

The features are built once per model and sequence length and reused by every layer and head; see
:mod:`robench.models.attention` for how BSA's fast path uses them.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def pairwise_sq_dist(coords: Tensor, num_prefix: int = 0) -> Tensor:
    """Squared Euclidean distances between token positions, ``(N, N)``.

    ``coords`` is ``(M, P)`` (P = 1 for text, 2 for an image patch grid). ``num_prefix`` tokens
    (e.g. CLS) are prepended with zero distance to everything: they carry no spatial term.
    """
    c = coords.to(torch.float32)
    d = (c[:, None, :] - c[None, :, :]).pow(2).sum(-1)
    if num_prefix:
        d = F.pad(d, (num_prefix, 0, num_prefix, 0))
    return d


class BSAPositions(NamedTuple):
    """Position features of the first ``n`` tokens, what a BSA layer needs (shared by all layers).

    ``feats`` is ``(n, P + 2)`` in fp32 (fp64 for fp64 models): the centred position ``p`` (P
    columns), ``||p||^2`` and ``m`` (1 for a position token; a prefix token's row is all zeros).
    ``max_sq`` is ``max ||p||^2``, known on the host so the numerical guard needs no device sync.
    """

    feats: Tensor
    max_sq: float
    num_prefix: int

    def sq_dist(self) -> Tensor:
        """The dense ``(n, n)`` squared distances (0 in prefix rows/columns): the exact path's input."""
        p, m = self.feats[:, :-2], self.feats[:, -1]
        return (p[:, None, :] - p[None, :, :]).pow(2).sum(-1) * (m[:, None] * m[None, :])


class TokenPositions(nn.Module):
    """Token positions for BSA's spatial kernel, one per model, shared by every layer and head.

    ``coords`` is ``(M, P)`` integer positions of the M position tokens (patch (row, col), word
    index); ``num_prefix`` prefix tokens (CLS) come first and have no spatial term. Positions are
    centred (on their mean rounded to a half-integer) to limit cancellation in the expansion and
    kept as integers ``2 (p - centre)`` in a non-persistent buffer: checkpoints are unaffected and
    ``.half()``/``.double()`` leave them exact. Calling the module gives the float features
    (:class:`BSAPositions`), built once per length, dtype and device and then reused.
    """

    def __init__(self, coords: Tensor, num_prefix: int = 0) -> None:
        super().__init__()
        if coords.is_floating_point() and not torch.equal(coords, coords.round()):
            raise ValueError("TokenPositions takes integer coordinates")
        coords = coords.to(torch.int64).reshape(coords.shape[0], -1)
        centre2 = torch.round(2 * coords.to(torch.float64).mean(0)).to(torch.int64) if len(coords) else 0
        twice = 2 * coords - centre2
        self.num_prefix = num_prefix
        self.register_buffer("twice_centred", twice, persistent=False)
        sq = twice.to(torch.float64).pow(2).sum(-1) / 4
        # max ||p||^2 over the first n tokens for every n (text models use a prefix of the table)
        self._max_sq = [0.0] * num_prefix + (torch.cummax(sq, 0).values.tolist() if len(sq) else [])
        self._cache: dict[tuple, BSAPositions] = {}

    def extra_repr(self) -> str:
        m, dims = self.twice_centred.shape
        return f"tokens={self.num_prefix + m}, dims={dims}, num_prefix={self.num_prefix}"

    def forward(self, n: int | None = None, dtype: torch.dtype = torch.float32) -> BSAPositions:
        """Features of the first ``n`` tokens (prefix included; default all), in fp32 or fp64."""
        n = len(self._max_sq) if n is None else n
        dtype = torch.promote_types(dtype, torch.float32)
        key = (n, dtype, self.twice_centred.device)
        if key not in self._cache:  # constant per (n, dtype, device): built once, reused by every forward
            with torch.inference_mode(False):  # normal tensors even if first built under inference_mode
                self._cache[key] = self._features(n, dtype)
        return self._cache[key]

    def _features(self, n: int, dtype: torch.dtype) -> BSAPositions:
        p = self.twice_centred[: max(n - self.num_prefix, 0)].to(dtype) * 0.5
        feats = torch.cat([p, p.pow(2).sum(-1, keepdim=True), torch.ones_like(p[:, :1])], dim=1)
        feats = F.pad(feats, (0, 0, min(self.num_prefix, n), 0))
        return BSAPositions(feats, self._max_sq[n - 1] if n else 0.0, self.num_prefix)

    def sq_dist(self, n: int | None = None) -> Tensor:
        """Dense squared distances ``(n, n)``, computed directly (the exact path's input)."""
        d = pairwise_sq_dist(self.twice_centred.to(torch.float32) * 0.5, num_prefix=self.num_prefix)
        return d if n is None else d[:n, :n]
