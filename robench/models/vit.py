"""Vision Transformer family in the four variants (``sa``, ``bsa``, ``grc``, ``bsa-grc``).

Input: normalised images ``(B, C, H, W)`` like any timm model; robench's loader wraps it with the
normalisation from the checkpoint card so that attacks work in [0, 1] pixel space.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from robench.models.attention import TokenPositions, pairwise_sq_dist
from robench.models.block import Encoder, init_weights
from robench.models.config import ArchConfig
from robench.models.registry import register_family


class RobenchViT(nn.Module):
    """ViT classifier with a CLS token; BSA variants have no additive position embedding.

    For BSA the spatial kernel uses each patch's (row, col) on the patch grid; the CLS token has no
    spatial term. Exposes timm's classifier API (``num_classes``, ``forward_features``,
    ``forward_head``, ``get_classifier``, ``reset_classifier``).
    """

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_classes = cfg.num_classes
        self.in_chans = cfg.in_chans
        self.num_features = self.embed_dim = cfg.embed_dim
        grid = cfg.img_size // cfg.patch_size
        self.grid = grid
        self.patch_embed = nn.Conv2d(cfg.in_chans, cfg.embed_dim, cfg.patch_size, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        n_tokens = grid * grid + 1
        if cfg.uses_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, n_tokens, cfg.embed_dim))
        else:
            self.pos_embed = None
        rows, cols = torch.meshgrid(torch.arange(grid), torch.arange(grid), indexing="ij")
        coords = torch.stack([rows.flatten(), cols.flatten()], dim=1)
        # Shared by every BSA layer and head; a non-persistent buffer, not part of the checkpoint.
        self.positions = TokenPositions(coords, num_prefix=1)
        # h_p starts at the mean squared patch distance: the spatial term is -1 on average.
        hp_init = float(pairwise_sq_dist(coords).mean()) if grid > 1 else 1.0
        self.encoder = Encoder(
            cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio,
            cfg.attention, cfg.residual, cfg.grc_init, cfg.hp_init(hp_init), cfg.attn_options(), cfg.grc_options(),
        )
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes)
        self.needs_positions = self.encoder.blocks[0].attn.needs_positions if cfg.depth else False
        init_weights(self)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def embed(self, x: Tensor) -> Tensor:
        """Patch tokens with CLS prepended (and position embedding for SA variants): ``Y_0``."""
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        return x

    @property
    def sq_dist(self) -> Tensor:
        """Dense ``(N, N)`` squared position distances (CLS row/column 0), for BSA's exact path."""
        return self.positions.sq_dist()

    def forward_features(self, x: Tensor, return_hidden: bool = False):
        """Final (normed) tokens; with ``return_hidden`` also ``[Y_0, block 1 out, ...]`` (pre-norm)."""
        x = self.embed(x)
        pos = self.positions(x.shape[1], x.dtype) if self.needs_positions else None
        return self.encoder(x, pos=pos, return_hidden=return_hidden)

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        x = x[:, 0]
        return x if pre_logits else self.head(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()


@register_family("vit")
def build_vit(cfg: ArchConfig) -> RobenchViT:
    """Build a :class:`RobenchViT` from its config."""
    return RobenchViT(cfg)
