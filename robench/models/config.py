"""Typed architecture configuration shared by every robench model family.

A config is what a checkpoint card stores under ``architecture``: it must rebuild the exact module
whose weights sit in the ``.safetensors`` file, so every field that changes a parameter shape or
the forward computation lives here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from robench.errors import RobenchError

# variant name -> (attention kind, residual kind); docs/models.md defines them.
VARIANTS: dict[str, tuple[str, str]] = {
    "sa": ("sa", "rc"),
    "bsa": ("bsa", "rc"),
    "grc": ("sa", "grc"),
    "bsa-grc": ("bsa", "grc"),
}
FAMILIES = ("vit", "text", "lm")


def variant_parts(variant: str) -> tuple[str, str]:
    """Return ``(attention, residual)`` for a variant name, or raise a one-line error."""
    try:
        return VARIANTS[variant]
    except KeyError:
        raise RobenchError(
            f"unknown variant {variant!r}; choose one of: {', '.join(VARIANTS)}"
        ) from None


@dataclass
class ArchConfig:
    """Architecture of one robench Transformer classifier.

    ``family`` selects the input stem (``vit``: patch embedding of an image; ``text``: token
    embedding; ``lm``: causal language model, ``max_length`` is its context, ``num_classes`` unused), ``variant`` the attention/residual pair. Image-only and text-only fields are ignored
    by the other family but kept so that one schema describes every checkpoint.
    """

    family: str
    variant: str = "sa"
    num_classes: int = 10
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    # GRC: t_l = sigmoid(tau_l) is initialised to this value.
    grc_init: float = 0.1
    # image stem
    img_size: int = 8
    patch_size: int = 2
    in_chans: int = 1
    # text stem
    vocab_size: int = 0
    max_length: int = 64
    pad_id: int = 0
    text_pos_embedding: str = "learned"  # "learned" | "sinusoidal" (ignored by BSA variants)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise RobenchError(f"unknown model family {self.family!r}; choose one of: {', '.join(FAMILIES)}")
        variant_parts(self.variant)
        if self.embed_dim % self.num_heads:
            raise RobenchError(
                f"embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}"
            )
        if self.family == "vit" and self.img_size % self.patch_size:
            raise RobenchError(
                f"img_size={self.img_size} is not divisible by patch_size={self.patch_size}"
            )
        if self.family == "text" and self.vocab_size < 4:
            raise RobenchError("a text model needs vocab_size >= 4 (pad, unk, cls and one word)")
        if self.family == "lm" and (self.vocab_size < 3 or self.max_length < 1):
            raise RobenchError("a language model needs vocab_size >= 3 (unk, eos and one word) and max_length >= 1")
        if self.text_pos_embedding not in ("learned", "sinusoidal"):
            raise RobenchError("text_pos_embedding must be 'learned' or 'sinusoidal'")
        if not 0.0 < self.grc_init < 1.0:
            raise RobenchError(f"grc_init must be in (0, 1), got {self.grc_init}")

    @property
    def attention(self) -> str:
        return variant_parts(self.variant)[0]

    @property
    def residual(self) -> str:
        return variant_parts(self.variant)[1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with the derived attention/residual kinds spelled out for readers."""
        d = dataclasses.asdict(self)
        d["attention"] = self.attention
        d["residual"] = self.residual
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ArchConfig":
        """Rebuild from a card; unknown keys are an error (a card from a newer robench)."""
        d = dict(d)
        d.pop("attention", None)
        d.pop("residual", None)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise RobenchError(
                f"checkpoint card has unknown architecture keys {unknown}; upgrade robench or fix the card"
            )
        if "family" not in d:
            raise RobenchError("checkpoint card's architecture has no 'family'")
        return cls(**d)
