"""Self-attention: standard softmax attention (SA) and Bilateral Self-Attention (BSA).

BSA (DESIGN.md section 6) weighs token j for query i with a bilateral-filter kernel, the product of
a content (range) kernel and a position (spatial) kernel::

    A_ij = softmax_j( -||q_i - k_j||^2 / h_y  -  ||p_i - p_j||^2 / h_p )

Expanding the square, ``-||q_i||^2 / h_y`` is constant along the softmax row and cancels, so::

    A_ij = softmax_j( (2 / h_y) q_i . k_j  -  ||k_j||^2 / h_y  -  D_ij / h_p )

which is one ``scaled_dot_product_attention`` call with a scaled query and an additive bias. No
``N x N x d`` tensor is ever formed. ``h_y`` and ``h_p`` are learnable per head and kept positive by
an exp parameterisation.
"""

from __future__ import annotations

import math

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


def build_attn_mask(
    key_padding_mask: Tensor | None, causal: bool, n: int, device: torch.device
) -> Tensor | None:
    """Boolean mask (True = may attend), broadcastable to ``(B, H, N, N)``, or None."""
    mask = None
    if key_padding_mask is not None:
        mask = key_padding_mask[:, None, None, :].to(torch.bool)
    if causal:
        tri = torch.ones(n, n, dtype=torch.bool, device=device).tril()
        mask = tri if mask is None else (mask & tri)
    return mask


class Attention(nn.Module):
    """Multi-head self-attention, ``kind='sa'`` (softmax of dot products) or ``kind='bsa'``.

    Args:
        dim: model width.
        num_heads: number of heads; ``dim`` must be divisible by it.
        kind: ``"sa"`` or ``"bsa"``.
        hp_init: initial spatial bandwidth ``h_p`` (BSA only), same for every head.
    """

    def __init__(self, dim: int, num_heads: int, kind: str = "sa", hp_init: float = 1.0) -> None:
        super().__init__()
        if kind not in ("sa", "bsa"):
            raise ValueError(f"unknown attention kind {kind!r}")
        self.kind = kind
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        if kind == "bsa":
            # 2 / h_y = 1 / sqrt(d_head) makes the content term match q.k / sqrt(d) at init.
            hy0 = 2.0 * math.sqrt(self.head_dim)
            self.log_hy = nn.Parameter(torch.full((num_heads,), math.log(hy0)))
            self.log_hp = nn.Parameter(torch.full((num_heads,), math.log(hp_init)))

    def extra_repr(self) -> str:
        return f"kind={self.kind}, num_heads={self.num_heads}, head_dim={self.head_dim}"

    def bandwidths(self) -> tuple[Tensor, Tensor]:
        """Current ``(h_y, h_p)`` per head (BSA only)."""
        return self.log_hy.exp(), self.log_hp.exp()

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        sq_dist: Tensor | None = None,
    ) -> Tensor:
        """Attend over ``x`` of shape ``(B, N, dim)``.

        ``key_padding_mask`` is ``(B, N)`` with True for real tokens. ``sq_dist`` is the ``(N, N)``
        matrix of squared position distances (required for BSA, shared by all layers and heads).
        """
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        mask = build_attn_mask(key_padding_mask, causal, n, x.device)
        if self.kind == "sa":
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            if sq_dist is None:
                raise ValueError("BSA needs the squared position distances (sq_dist)")
            inv_hy = (-self.log_hy).exp().to(q.dtype)[None, :, None, None]
            inv_hp = (-self.log_hp).exp().to(q.dtype)[None, :, None, None]
            bias = -(k * k).sum(-1, keepdim=True).transpose(-1, -2) * inv_hy  # (B, H, 1, N)
            bias = bias - sq_dist.to(q.dtype)[None, None] * inv_hp  # (B, H, N, N)
            if mask is not None:
                bias = bias.masked_fill(~mask, float("-inf"))
            out = F.scaled_dot_product_attention(q * (2.0 * inv_hy), k, v, attn_mask=bias, scale=1.0)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))
