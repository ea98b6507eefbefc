"""robench's Transformer families (ViT, text encoder, language model) in the SA/BSA/GRC/BSA-GRC variants.

``import robench.models.timm_models`` registers the ViT variants with timm's model registry, so that
``timm.create_model("robench_vit_bsa", ...)`` works.
"""

from robench.models.config import VARIANTS, ArchConfig
from robench.models.registry import build_model, list_families, register_family
from robench.models import lm, text, vit  # noqa: F401  (their @register_family decorators fill the registry)

__all__ = ["VARIANTS", "ArchConfig", "build_model", "list_families", "register_family"]
