"""Registers robench's ViT variants with timm: ``timm.create_model("robench_vit_bsa_grc", ...)``.

Kept out of :mod:`robench.models.vit` because importing timm costs seconds and most robench
commands do not need it. Keyword arguments are :class:`~robench.models.config.ArchConfig` fields;
``pretrained=True`` is refused (the zoo is loaded with ``robench.load_model``).
"""

from __future__ import annotations

from typing import Any

from timm.models import register_model

from robench.models.config import ArchConfig
from robench.models.vit import RobenchViT


def _create(variant: str, pretrained: bool, kwargs: dict[str, Any]) -> RobenchViT:
    if pretrained:
        raise ValueError("robench ViTs have no timm pretrained weights; use robench.load_model('digits-vit-...')")
    for key in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        kwargs.pop(key, None)
    model = RobenchViT(ArchConfig(family="vit", variant=variant, **kwargs))
    model.pretrained_cfg = {"num_classes": model.num_classes, "input_size": (model.cfg.in_chans, model.cfg.img_size, model.cfg.img_size)}
    return model


@register_model
def robench_vit_sa(pretrained: bool = False, **kwargs: Any) -> RobenchViT:
    """ViT with softmax self-attention and the standard residual."""
    return _create("sa", pretrained, kwargs)


@register_model
def robench_vit_bsa(pretrained: bool = False, **kwargs: Any) -> RobenchViT:
    """ViT with Bilateral Self-Attention (no additive position embedding)."""
    return _create("bsa", pretrained, kwargs)


@register_model
def robench_vit_grc(pretrained: bool = False, **kwargs: Any) -> RobenchViT:
    """ViT with the Generalized Residual Connection."""
    return _create("grc", pretrained, kwargs)


@register_model
def robench_vit_bsa_grc(pretrained: bool = False, **kwargs: Any) -> RobenchViT:
    """ViT with both Bilateral Self-Attention and the Generalized Residual Connection."""
    return _create("bsa-grc", pretrained, kwargs)
