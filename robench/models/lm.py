"""Causal (decoder-only) language-model family ``lm`` in the four variants (``sa``, ``bsa``,
``grc``, ``bsa-grc``): next-token prediction over a word vocabulary.

Pre-LayerNorm blocks with the causal mask; token embedding, plus a learned position embedding for
the SA variants only (like the ``text`` family); BSA variants have no position embedding and use
the 1-D token index in the spatial kernel, ``A_ij = softmax_{j<=i}(-||q_i-k_j||^2/h_y - (i-j)^2/h_p)``.
The output layer is tied to the token embedding (``logits = LN(x) E^T``, no bias): the checkpoint
holds the embedding once.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robench.models.attention import TokenPositions, pairwise_sq_dist
from robench.models.block import Encoder, init_weights
from robench.models.config import ArchConfig
from robench.models.registry import register_family



class RobenchLM(nn.Module):
    """``forward(ids (B, N)) -> logits (B, N, vocab)``; position i predicts token i + 1."""

    partial_logits = True  # forward(ids, keep_from=k) returns the logits of positions k.. only

    def __init__(self, cfg: ArchConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.context = cfg.max_length
        self.tok_embed = nn.Embedding(cfg.vocab_size, cfg.embed_dim)
        self.pos_embed: nn.Parameter | None = None
        if cfg.uses_pos_embed:
            self.pos_embed = nn.Parameter(torch.zeros(1, cfg.max_length, cfg.embed_dim))
        coords = torch.arange(cfg.max_length)[:, None]
        self.positions = TokenPositions(coords)  # non-persistent: not in the checkpoint
        hp_init = float(pairwise_sq_dist(coords).mean()) if cfg.max_length > 1 else 1.0
        self.encoder = Encoder(
            cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio,
            cfg.attention, cfg.residual, cfg.grc_init, cfg.hp_init(hp_init), cfg.attn_options(), cfg.grc_options(),
        )
        self.needs_positions = self.encoder.blocks[0].attn.needs_positions if cfg.depth else False
        init_weights(self)
        if self.pos_embed is not None:
            nn.init.trunc_normal_(self.pos_embed, std=0.02)

    def embed(self, input_ids: Tensor) -> Tensor:
        x = self.tok_embed(input_ids)
        if self.pos_embed is not None:
            x = x + self.pos_embed[:, : x.shape[1]]
        return x

    def forward_features(self, input_ids: Tensor, return_hidden: bool = False, sq_dist: Tensor | None = None):
        n = input_ids.shape[1]
        if n > self.context:
            raise ValueError(f"sequence of {n} tokens is longer than the context ({self.context})")
        x = self.embed(input_ids)
        pos = self.positions(n, x.dtype) if self.needs_positions and sq_dist is None else None
        return self.encoder(x, causal=True, pos=pos, sq_dist=sq_dist, return_hidden=return_hidden)

    def forward(self, input_ids: Tensor, keep_from: int = 0) -> Tensor:
        """Logits of positions ``keep_from`` onwards (evaluation skips the unscored ones)."""
        return F.linear(self.forward_features(input_ids)[:, keep_from:], self.tok_embed.weight)  # tied output layer


class LanguageModel(nn.Module):
    """A language model plus its tokenizer (what :func:`robench.models.loading.wrap` gives for the task)."""

    partial_logits = True

    def __init__(self, net: nn.Module, tokenizer) -> None:
        super().__init__()
        self.net = net
        self.tokenizer = tokenizer

    @property
    def context(self) -> int:
        return self.tokenizer.max_length

    def forward(self, input_ids: Tensor, keep_from: int = 0) -> Tensor:
        return self.net(input_ids, keep_from)


@register_family("lm")
def build_lm(cfg: ArchConfig) -> RobenchLM:
    """Build a :class:`RobenchLM` from its config."""
    return RobenchLM(cfg)
