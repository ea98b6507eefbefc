"""Pre-LayerNorm Transformer block with an optional Generalized Residual Connection (GRC).

GRC (docs/models.md) boosts the attention sub-layer toward the first block's input ``Y_0``::

    X <- (1 - t_l) * (X + Attn(LN(X))) + t_l * Y_0,      t_l = sigmoid(tau_l)

with one learnable scalar per layer initialised to ``t = 0.1``. The MLP sub-layer keeps the
standard residual; the standard residual connection is ``t = 0``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robench.models.attention import Attention, BSAPositions


class Mlp(nn.Module):
    """Two-layer GELU MLP."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """One encoder block: ``attention`` is ``sa``/``bsa``, ``residual`` is ``rc``/``grc``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        attention: str = "sa",
        residual: str = "rc",
        grc_init: float = 0.1,
        hp_init: float = 1.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, kind=attention, hp_init=hp_init)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        if residual == "grc":
            self.tau = nn.Parameter(torch.tensor(math.log(grc_init / (1.0 - grc_init))))
        elif residual == "rc":
            self.tau = None
        else:
            raise ValueError(f"unknown residual kind {residual!r}")

    @property
    def t(self) -> Tensor | None:
        """The GRC mixing weight ``t_l`` (None for the standard residual)."""
        return None if self.tau is None else torch.sigmoid(self.tau)

    def forward(
        self,
        x: Tensor,
        y0: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        sq_dist: Tensor | None = None,
        pos: BSAPositions | None = None,
    ) -> Tensor:
        x = x + self.attn(self.norm1(x), key_padding_mask, causal, sq_dist, pos)
        if self.tau is not None:
            t = torch.sigmoid(self.tau)
            x = (1.0 - t) * x + t * y0
        return x + self.mlp(self.norm2(x))


class Encoder(nn.Module):
    """A stack of blocks sharing one set of token positions (BSA) and one ``Y_0`` (GRC).

    BSA layers take ``pos`` (the model's :class:`~robench.models.attention.TokenPositions`
    features, computed once per forward) or, for the exact reference path, ``sq_dist``.
    """

    def __init__(
        self,
        dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        attention: str,
        residual: str,
        grc_init: float,
        hp_init: float,
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, attention, residual, grc_init, hp_init) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(dim)

    def forward(
        self,
        x: Tensor,
        key_padding_mask: Tensor | None = None,
        causal: bool = False,
        sq_dist: Tensor | None = None,
        return_hidden: bool = False,
        pos: BSAPositions | None = None,
    ) -> Tensor | tuple[Tensor, list[Tensor]]:
        y0 = x
        hidden = [x]
        for blk in self.blocks:
            x = blk(x, y0, key_padding_mask, causal, sq_dist, pos)
            hidden.append(x)
        x = self.norm(x)
        return (x, hidden) if return_hidden else x


def init_weights(module: nn.Module) -> None:
    """ViT-style init: truncated normal (std 0.02) linear/embedding weights, zero biases."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
