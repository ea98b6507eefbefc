"""Text-encoder classifier family in the four variants (``sa``, ``bsa``, ``grc``, ``bsa-grc``).

Input: token ids ``(B, L)`` with ``pad_id`` for padding; a learned CLS vector is prepended and its
final state feeds the classifier. SA/GRC variants add a learned or sinusoidal position embedding;
BSA variants have none and use the 1-D token index in the spatial kernel instead.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from robench.models.attention import TokenPositions, pairwise_sq_dist
from robench.models.block import Encoder, init_weights
from robench.models.config import ArchConfig
from robench.models.registry import register_family


def sinusoidal_embedding(n: int, dim: int) -> Tensor:
    """The fixed sine/cosine position table of Vaswani et al. (2017), ``(n, dim)``."""
    pos = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(n, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class RobenchTextClassifier(nn.Module):
    """Transformer encoder over word tokens with a CLS classifier head and padding masks."""

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.pad_id = cfg.pad_id
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=cfg.pad_id)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        n_tokens = cfg.max_length + 1
        self.pos_embed: nn.Parameter | None = None
        if cfg.uses_pos_embed:
            if cfg.text_pos_embedding == "learned":
                self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, cfg.embed_dim))
            else:
                self.register_buffer(
                    "pos_table", sinusoidal_embedding(n_tokens, cfg.embed_dim)[None], persistent=False
                )
        coords = torch.arange(cfg.max_length)[:, None]
        # Shared by every BSA layer and head; a non-persistent buffer, not part of the checkpoint.
        self.positions = TokenPositions(coords, num_prefix=1)
        hp_init = float(pairwise_sq_dist(coords).mean()) if cfg.max_length > 1 else 1.0
        self.encoder = Encoder(
            cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio,
            cfg.attention, cfg.residual, cfg.grc_init, cfg.hp_init(hp_init), cfg.attn_options(), cfg.grc_options(),
        )
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self.needs_positions = self.encoder.blocks[0].attn.needs_positions if cfg.depth else False
        init_weights(self)
        with torch.no_grad():
            self.tok_embed.weight[cfg.pad_id].zero_()
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def embed(self, input_ids: Tensor) -> Tensor:
        """Token embeddings with CLS prepended (plus position embedding for SA variants)."""
        x = self.tok_embed(input_ids)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        n = x.shape[1]
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, :n]
        elif hasattr(self, "pos_table"):
            x = x + self.pos_table[:, :n]
        return x

    def forward_features(self, input_ids: Tensor, return_hidden: bool = False):
        if input_ids.shape[1] > self.cfg.max_length:
            input_ids = input_ids[:, : self.cfg.max_length]
        n = input_ids.shape[1] + 1
        valid = torch.cat(
            [torch.ones_like(input_ids[:, :1], dtype=torch.bool), input_ids != self.pad_id], dim=1
        )
        x = self.embed(input_ids)
        pos = self.positions(n, x.dtype) if self.needs_positions else None
        return self.encoder(x, key_padding_mask=valid, pos=pos, return_hidden=return_hidden)

    @property
    def sq_dist(self) -> Tensor:
        """Dense ``(N, N)`` squared position distances (CLS row/column 0), for BSA's exact path."""
        return self.positions.sq_dist()

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.head(self.forward_features(input_ids)[:, 0])


@register_family("text")
def build_text(cfg: ArchConfig) -> RobenchTextClassifier:
    """Build a :class:`RobenchTextClassifier` from its config."""
    return RobenchTextClassifier(cfg)
