"""robench's ViT variants as timm models: ``timm.create_model("robench_deit_tiny_bsa_patch16_224")``.

Two kinds of entry points, each with a timm ``pretrained_cfg`` (timm's ``generate_default_cfgs``):

- ``robench_vit_{sa,bsa,grc,bsa_grc}``: free-form; keyword arguments are
  :class:`~robench.models.config.ArchConfig` fields (defaults: ArchConfig's, an 8 px one-channel model).
- ``robench_deit_{tiny,small}_{sa,bsa,grc,bsa_grc}_{patch16_224,patch4_32}``: DeiT's sizes (tiny: width
  192, 3 heads; small: 384, 6 heads; depth 12, MLP ratio 4) at 224 px with 16 px patches (1,000
  classes, crop_pct 0.875) or 32 px with 4 px patches (CIFAR: 10 classes, crop_pct 1); keyword
  arguments override any field, as timm's own ``deit_*`` entry points do.

robench publishes no timm weights: ``pretrained=True`` is refused unless the ``pretrained_cfg`` names
a weight source (``local-dir:DIR`` / ``hf-hub:ID``, e.g. what ``robench export`` wrote). robench's
ViT has no dropout or stochastic depth, so a non-zero ``drop_rate``/``drop_path_rate`` (train.py's
``--drop``/``--drop-path``) is refused rather than ignored.

Kept out of :mod:`robench.models.vit` because importing timm costs seconds; ``import robench``
registers these the moment timm is imported (:mod:`robench.timm_hook`).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, resolve_pretrained_cfg

from robench.models.config import BASELINE_VARIANTS, VARIANTS, ArchConfig
from robench.models.vit import RobenchViT

# timm's regularisation keywords; robench's ViT has none of them, so only 0 (or unset) is accepted
_DROP_ARGS = ("drop_rate", "drop_path_rate", "drop_block_rate", "drop_connect_rate", "attn_drop_rate",
              "proj_drop_rate", "pos_drop_rate", "patch_drop_rate")
# the paper's four variants are timm models (the ALiBi/RoPE baselines are not); their design options
# (bsa_range=..., grc_t=...) are ArchConfig fields, so timm keyword arguments reach them
TIMM_VARIANTS = {v.replace("-", "_"): v for v in VARIANTS if v not in BASELINE_VARIANTS}  # timm name part -> variant
SIZES = {
    "deit_tiny": dict(embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0),
    "deit_small": dict(embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0),
}
# name suffix -> (patch_size, img_size, num_classes, crop_pct)
GEOMETRIES = {"patch16_224": (16, 224, 1000, 0.875), "patch4_32": (4, 32, 10, 1.0)}


class NoPretrainedWeights(RuntimeError):
    """``pretrained=True`` for a robench model whose pretrained_cfg names no weights."""


def _cfg(**kwargs: Any) -> dict[str, Any]:
    """timm's pretrained_cfg pattern (its models' ``_cfg``), with robench's module names."""
    return {
        "url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": None,
        "crop_pct": 0.875, "interpolation": "bicubic", "fixed_input_size": True,
        "mean": IMAGENET_DEFAULT_MEAN, "std": IMAGENET_DEFAULT_STD,
        "first_conv": "patch_embed", "classifier": "head",
        **kwargs,
    }


def deit_name(size: str, variant: str, geometry: str) -> str:
    """``robench_deit_tiny_bsa_grc_patch16_224`` for ("deit_tiny", "bsa-grc", "patch16_224")."""
    return f"robench_{size}_{variant.replace('-', '_')}_{geometry}"


_DEIT = {
    deit_name(size, variant, geometry): (variant, {**args, "patch_size": patch})
    for size, args in SIZES.items() for variant in TIMM_VARIANTS.values()
    for geometry, (patch, _, _, _) in GEOMETRIES.items()
}
default_cfgs = generate_default_cfgs({
    **{f"robench_vit_{v}": _cfg(num_classes=10, input_size=(1, 8, 8), crop_pct=1.0) for v in TIMM_VARIANTS},
    **{deit_name(size, variant, geometry): _cfg(num_classes=classes, input_size=(3, img, img), crop_pct=crop)
       for size in SIZES for variant in TIMM_VARIANTS.values() for geometry, (_, img, classes, crop) in GEOMETRIES.items()},
})


def _build_vit(variant: str, **kwargs: Any) -> RobenchViT:
    """``RobenchViT`` from timm's keyword arguments (``img_size`` may come as timm's ``(H, W)``)."""
    for key in _DROP_ARGS:
        if kwargs.pop(key, None):
            raise ValueError(f"{key}: robench's ViT has no dropout or stochastic depth; leave it at 0 "
                             "(timm train.py: --drop 0, no --drop-path)")
    pool = kwargs.pop("global_pool", None)
    if pool not in (None, "token"):
        raise ValueError(f"global_pool={pool!r}: robench's ViT classifies the CLS token ('token' only)")
    size = kwargs.get("img_size")
    if size is not None and not isinstance(size, int):
        h, w = size
        if h != w:
            raise ValueError(f"img_size={tuple(size)}: robench's ViT takes square images")
        kwargs["img_size"] = int(h)
    return RobenchViT(ArchConfig(family="vit", variant=variant, **kwargs))


def _create(name: str, variant: str, pretrained: bool, kwargs: dict[str, Any]) -> RobenchViT:
    cfg_args = {k: kwargs.pop(k) for k in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir", "pretrained_model_args")
                if k in kwargs}
    if pretrained and not resolve_pretrained_cfg(name, cfg_args.get("pretrained_cfg"), cfg_args.get("pretrained_cfg_overlay")).has_weights:
        raise NoPretrainedWeights(
            f"{name}: robench publishes no pretrained timm weights; use pretrained=False (random init), pass a "
            "checkpoint (timm:NAME=WEIGHTS) or a folder written by `robench export` (local-dir:DIR / hf-hub:ID)")
    device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
    model = build_model_with_cfg(partial(_build_vit, variant), name, pretrained, **cfg_args, **kwargs)
    # the cfg describes this model (no source weights to describe otherwise): the data config follows its size
    c = model.cfg
    model.pretrained_cfg = model.default_cfg = {
        **model.pretrained_cfg, "input_size": (c.in_chans, c.img_size, c.img_size), "num_classes": model.num_classes,
    }
    if device is not None or dtype is not None:
        model = model.to(device=device, dtype=dtype)
    return model


def _entrypoint(name: str, variant: str, fixed: dict[str, Any], doc: str) -> Callable[..., RobenchViT]:
    def create(pretrained: bool = False, **kwargs: Any) -> RobenchViT:
        return _create(name, variant, pretrained, {**fixed, **kwargs})

    create.__name__ = create.__qualname__ = name  # timm registers an entry point under its __name__
    create.__doc__ = doc
    return create


_DOCS = {"sa": "softmax self-attention, standard residual", "bsa": "Bilateral Self-Attention (no position embedding)",
         "grc": "the Generalized Residual Connection", "bsa-grc": "Bilateral Self-Attention and the Generalized Residual Connection"}

for _v in TIMM_VARIANTS.values():
    _name = f"robench_vit_{_v.replace('-', '_')}"
    globals()[_name] = register_model(_entrypoint(_name, _v, {}, f"robench ViT with {_DOCS[_v]}; kwargs are ArchConfig fields."))
for _name, (_v, _fixed) in _DEIT.items():
    globals()[_name] = register_model(_entrypoint(_name, _v, _fixed, f"robench ViT at a DeiT size with {_DOCS[_v]}."))
