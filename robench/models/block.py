"""Pre-LayerNorm Transformer block with an optional Generalized Residual Connection (GRC).

GRC (docs/models.md) boosts the attention sub-layer toward the first block's input ``Y_0``::

    X <- (1 - t_l) * (X + Attn(LN(X))) + t_l * Y_0,      t_l = sigmoid(tau_l)

with one learnable scalar per layer initialised to ``t = 0.1``. The MLP sub-layer keeps the
standard residual; the standard residual connection is ``t = 0``. Those are the defaults of
:class:`GRCOptions`: ``t`` may instead be fixed or learned per channel, the MLP sub-layer may be
boosted too (its own ``t``), and ``Y_0`` may be the first layer's values ``W_V LN_1(Y_0)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass(frozen=True)
class GRCOptions:
    """GRC's design choices (``ArchConfig.grc_*``); the defaults are robench's reading."""

    t: str = "layer"  # "layer": one learnable scalar per block; "channel": one per channel; "fixed"
    sublayers: str = "attn"  # "attn" or "attn+mlp" (the MLP sub-layer gets its own t)
    y0: str = "embed"  # "embed": the first block's input; "values": the first layer's values


class Block(nn.Module):
    """One encoder block: ``attention`` is an :class:`Attention` kind, ``residual`` is ``rc``/``grc``.

    ``attn_options`` are passed to :class:`Attention` (BSA's options), ``grc`` shapes the GRC.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        attention: str = "sa",
        residual: str = "rc",
        grc_init: float = 0.1,
        hp_init: float = 1.0,
        attn_options: dict | None = None,
        grc: GRCOptions = GRCOptions(),
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, kind=attention, hp_init=hp_init, **(attn_options or {}))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.tau = self.tau_mlp = None
        if residual == "grc":
            self._mixing("tau", grc_init, grc.t, dim)
            if grc.sublayers == "attn+mlp":
                self._mixing("tau_mlp", grc_init, grc.t, dim)
            elif grc.sublayers != "attn":
                raise ValueError(f"unknown GRC sublayers {grc.sublayers!r}")
        elif residual != "rc":
            raise ValueError(f"unknown residual kind {residual!r}")

    def _mixing(self, name: str, init: float, mode: str, dim: int) -> None:
        tau = torch.tensor(math.log(init / (1.0 - init)))
        if mode == "layer":
            setattr(self, name, nn.Parameter(tau))
        elif mode == "channel":
            setattr(self, name, nn.Parameter(tau.expand(dim).clone()))
        elif mode == "fixed":  # persistent: the checkpoint keeps the key; never trained
            delattr(self, name)
            self.register_buffer(name, tau)
        else:
            raise ValueError(f"unknown GRC t mode {mode!r}")

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
        x = x + self.mlp(self.norm2(x))
        if self.tau_mlp is not None:
            t = torch.sigmoid(self.tau_mlp)
            x = (1.0 - t) * x + t * y0
        return x


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
        attn_options: dict | None = None,
        grc: GRCOptions = GRCOptions(),
    ) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(
            Block(dim, num_heads, mlp_ratio, attention, residual, grc_init, hp_init, attn_options, grc)
            for _ in range(depth)
        )
        self.y0_values = residual == "grc" and grc.y0 == "values"
        if grc.y0 not in ("embed", "values"):
            raise ValueError(f"unknown GRC Y_0 {grc.y0!r}")
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
        # GRC's reference: the embeddings, or (NeuTRENO-style) the first layer's values of them
        y0 = self.blocks[0].attn.values(self.blocks[0].norm1(x)) if self.y0_values else x
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
