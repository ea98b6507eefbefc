"""Architecture registry: family name -> builder, filled by a decorator (timm's pattern)."""

from __future__ import annotations

from typing import Callable

from torch import nn

from robench.errors import RobenchError
from robench.models.config import ArchConfig

Builder = Callable[[ArchConfig], nn.Module]
_FAMILIES: dict[str, Builder] = {}


def register_family(name: str) -> Callable[[Builder], Builder]:
    """Register ``fn(cfg) -> nn.Module`` as the builder of model family ``name``."""

    def deco(fn: Builder) -> Builder:
        if name in _FAMILIES:
            raise ValueError(f"model family {name!r} registered twice")
        _FAMILIES[name] = fn
        return fn

    return deco


def list_families() -> list[str]:
    """Names of the registered model families."""
    return sorted(_FAMILIES)


def build_model(cfg: ArchConfig) -> nn.Module:
    """Instantiate the architecture described by ``cfg`` (random init)."""
    try:
        builder = _FAMILIES[cfg.family]
    except KeyError:
        raise RobenchError(
            f"unknown model family {cfg.family!r}; registered: {', '.join(sorted(_FAMILIES))}"
        ) from None
    return builder(cfg)
